"""The prediction log in a real PostgreSQL table (``MLOPS_PREDICTION_LOG_DATABASE``).

The same scored batches as the Parquet log, appended in transactions by the background writer,
read back whole and per day, and found by monitoring's ``served_predictions`` through the
environment variable (resolved by ``Environment.from_env``), as a deployed service and the
Dagster code location would share it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_assets.features.cleaning import clean_frame
from mlops_assets.generators import get_generator
from mlops_assets.prediction_log import (
    PredictionLog,
    ScoredBatch,
    drop_log_days_before,
    log_table,
    read_prediction_log,
    served_predictions,
)
from mlops_assets.specs import UseCaseSpec, use_case_specs
from mlops_assets.storage.objectstore import LocalObjectStore
from mlops_assets_tests.harness.postgres import PostgresServer

pytestmark = pytest.mark.integration

DAY_ONE = dt.datetime(2026, 3, 1, 23, 59, tzinfo=dt.UTC)
DAY_TWO = dt.datetime(2026, 3, 2, 0, 1, tzinfo=dt.UTC)


def scored(spec: UseCaseSpec, request_ids: list[str], counts: list[int], at: dt.datetime):
    raw = get_generator(spec.generator or spec.name).generate(sum(counts), at.date(), seed=5)
    cleaned, _ = clean_frame(raw, spec)
    cleaned = cleaned.head(sum(counts))
    rows = len(cleaned)
    if spec.is_classification:
        classes = spec.target.classes or []
        probabilities = np.full((rows, len(classes)), 1 / len(classes))
        predictions = np.array([classes[i % len(classes)] for i in range(rows)], dtype=object)
    else:
        probabilities, predictions = None, np.linspace(1.0, 2.0, rows)
    return ScoredBatch(
        request_ids, counts, cleaned, predictions, spec.name, "4", probabilities, scored_at=at
    )


@pytest.mark.parametrize("use_case", ["bigmart_sales", "mushroom"])
def test_log_rows_land_in_a_postgres_table(
    postgres_server: PostgresServer, use_case: str, tmp_path: Path, monkeypatch
) -> None:
    from mlops_assets.environment import Environment

    spec = use_case_specs()[use_case]
    url = postgres_server.create_database("prediction_log")
    store = LocalObjectStore(tmp_path / "lake")
    log = PredictionLog(store, spec, flush_interval_s=3600, database_url=url)
    first, second = scored(spec, ["a", "b"], [2, 3], DAY_ONE), scored(spec, ["c"], [4], DAY_TWO)
    log.append(first)
    log.append(second)
    log.close()

    assert not list(store.list("")), "nothing may go to the storage when a database is set"
    logged = read_prediction_log(store, spec.name, database_url=url)
    assert len(logged) == 9 and log.rows_written == 9
    assert logged["request_id"].tolist() == ["a"] * 2 + ["b"] * 3 + ["c"] * 4
    assert logged["record"].tolist() == [0, 1, 0, 1, 2, 0, 1, 2, 3]
    assert set(logged["model_version"]) == {"4"}
    for column in spec.feature_names:
        expected = pd.concat([first.cleaned[column], second.cleaned[column]], ignore_index=True)
        got = logged[column]
        if spec.column(column).type in {"numeric", "integer"}:
            np.testing.assert_allclose(got.astype(float), expected.astype(float))
        else:
            assert (
                got.where(got.notna(), None).tolist()
                == expected.astype(object).where(expected.notna(), None).tolist()
            ), column
    if spec.is_classification:
        sums = logged[[f"proba_{c}" for c in spec.target.classes or []]].sum(axis=1)
        np.testing.assert_allclose(sums, 1.0)

    monkeypatch.setenv("MLOPS_PREDICTION_LOG_DATABASE", url)
    database = Environment.from_env().prediction_log_database
    day_two = served_predictions(store, spec, ["2026-03-02"], database)
    assert day_two["request_id"].tolist() == ["c"] * 4
    assert served_predictions(store, spec, ["2026-03-03"], database).empty
    if not spec.segments:  # retention (`mlops gc`) deletes the rows of days before its cutoff
        assert drop_log_days_before(store, spec, "2026-03-02", url) == 5
        assert (
            read_prediction_log(store, spec.name, database_url=url)["request_id"].tolist()
            == ["c"] * 4
        )
    with postgres_server.connect("prediction_log") as connection, connection.cursor() as cursor:
        cursor.execute(f'DROP TABLE "{log_table(spec.name)}"')
