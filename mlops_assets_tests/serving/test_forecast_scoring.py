"""Serving a forecast: requests carry series, date and known covariates, never lags.

The scorer reads the series' stored clean days and derives lags and rolling means with the
training code, so a served row gets exactly the features (and prediction) its training row had.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlops_assets.features.cleaning import clean_frame
from mlops_assets.features.derived import model_spec
from mlops_assets.features.forecast import prepare_history
from mlops_assets.features.history import StoredHistory
from mlops_assets.features.pipeline import model_input
from mlops_assets.generators import get_generator
from mlops_assets.serving.records import columns_of
from mlops_assets.serving.scoring import Accepted, Scorer
from mlops_assets.specs import use_case_specs
from mlops_assets.storage.objectstore import open_store
from mlops_assets.storage.tables import table_key, write_table
from mlops_assets.training.families import build_pipeline, predict_frame

FIRST, LAST = dt.date(2025, 1, 1), dt.date(2025, 3, 31)


@pytest.fixture(scope="module")
def m5():
    return use_case_specs()["m5_sales"]


@pytest.fixture(scope="module")
def stored(m5, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """Generated clean days written as ``clean_data`` partitions, as ingestion stores them."""
    root = tmp_path_factory.mktemp("lake")
    history = get_generator("m5_sales").history(FIRST, LAST, seed=9)
    clean, _ = clean_frame(history, m5)
    store = open_store(str(root))
    for day, rows in clean.groupby(clean["date"].dt.strftime("%Y-%m-%d")):
        write_table(store, table_key(["m5_sales", "clean_data"], str(day)), rows)
    return root, clean


@pytest.fixture(scope="module")
def pipeline(m5, stored) -> Any:
    modelled = model_spec(m5)
    train = prepare_history(stored[1], m5)
    model = build_pipeline(modelled, "ridge", {"alpha": 1.0})
    model.fit(model_input(train, modelled), train["sales"])
    return model


@pytest.fixture
def scorer(m5, stored, pipeline) -> Scorer:
    return Scorer(
        m5, pipeline, "m5_sales", "1", history=StoredHistory(open_store(str(stored[0])), m5)
    )


def as_records(rows: pd.DataFrame, m5, **overrides: Any) -> list[dict[str, Any]]:
    records = []
    for row in rows.to_dict("records"):
        record = {c.name: row.get(c.name) for c in m5.input_columns}
        record["date"] = pd.Timestamp(record["date"]).strftime("%Y-%m-%d")
        record["wm_yr_wk"] = int(record["wm_yr_wk"]) if pd.notna(record["wm_yr_wk"]) else None
        for name in ("snap_CA", "snap_TX", "snap_WI"):
            record[name] = int(record[name])
        record = {
            k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in record.items()
        }
        records.append({**record, **overrides})
    return records


def test_served_rows_predict_as_their_training_rows(m5, stored, pipeline, scorer) -> None:
    modelled = model_spec(m5)
    prepared = prepare_history(stored[1], m5)
    last_weeks = prepared[(prepared["date"] >= "2025-03-20") & ~prepared["_filled"]]
    expected = predict_frame(pipeline, model_input(last_weeks, modelled), modelled)[0]
    [outcome] = scorer.score_requests([columns_of(as_records(last_weeks, m5), m5)], ["r0"])
    assert isinstance(outcome, Accepted)
    np.testing.assert_allclose(outcome.predictions, expected, rtol=1e-9)
    assert outcome.ids["id"] == last_weeks["id"].tolist()


def test_series_attributes_come_from_history(m5, stored, scorer) -> None:
    """A client sends series, date and covariates; item, store and price may be null."""
    rows = stored[1][stored[1]["date"] == "2025-03-31"].head(3)
    unknown = dict.fromkeys(["item_id", "dept_id", "cat_id", "store_id", "state_id"])
    full = scorer.score_requests([columns_of(as_records(rows, m5), m5)], ["a"])[0]
    sparse = scorer.score_requests([columns_of(as_records(rows, m5, **unknown), m5)], ["b"])[0]
    assert isinstance(sparse, Accepted) and isinstance(full, Accepted)
    assert sparse.predictions == pytest.approx(full.predictions)


def test_unknown_days_are_missing_lags_not_zero_sales(m5, stored) -> None:
    history = StoredHistory(open_store(str(stored[0])), m5)
    from mlops_assets.features.forecast import request_features

    last = stored[1][stored[1]["date"] == "2025-03-31"].head(2)
    ahead = last.assign(date=pd.Timestamp("2025-04-10"), sales=np.nan)
    past = history.rows(dt.date(2025, 2, 1), dt.date(2025, 4, 9))
    features = request_features(past, ahead, m5, known_from=pd.Timestamp("2025-02-01"))
    assert features["lag_7"].isna().all()  # 2025-04-03: after the stored history
    assert features["lag_28"].notna().all()  # 2025-03-13: known
    assert (features["item_id"] == last["item_id"].to_numpy()).all()


def test_service_request_path_reads_history_from_configured_storage(
    m5, stored, pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bento's runtime: a JSON body of series, dates and covariates; lags from storage.

    The history is read from the lake the environment configures (``MLOPS_STORAGE_URI``), as a
    bento worker builds it (:func:`mlops_assets.serving.worker.runtime_for_models`).
    """
    import asyncio
    import json

    from mlops_assets.environment import Environment, ServingOptions
    from mlops_assets.prediction_log import PredictionLog, read_prediction_log
    from mlops_assets.serving.runtime import ServingRuntime, SlotRuntime

    monkeypatch.setenv("MLOPS_STORAGE_URI", str(stored[0]))
    env = Environment.from_env()
    store = env.lake()
    log = PredictionLog(store, m5, flush_interval_s=3600)
    slot = SlotRuntime(
        m5, pipeline, "m5_sales", "1", ServingOptions(), log=log, history=StoredHistory(store, m5)
    )
    runtime = ServingRuntime(m5, {None: slot})
    rows = stored[1][stored[1]["date"] == "2025-03-31"].head(4)
    unknown = dict.fromkeys(["item_id", "dept_id", "cat_id", "store_id", "state_id", "d"])
    body = as_records(rows, m5, date="2025-04-02", sell_price=None, **unknown)
    answer = asyncio.run(runtime.answer(body, "req-0"))
    assert answer.status == 200, answer.body
    result = json.loads(answer.body)
    assert len(result["predictions"]) == 4
    assert [i["id"] for i in result["ids"]] == rows["id"].tolist()
    assert {i["date"] for i in result["ids"]} == {"2025-04-02"}  # a date id, JSON-ready
    runtime.close()
    assert len(read_prediction_log(store, "m5_sales")) == 4
