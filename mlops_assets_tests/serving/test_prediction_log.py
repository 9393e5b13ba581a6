"""The prediction log: written off the request path, complete after ``close``, stable types."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlops_assets.features.cleaning import clean_frame
from mlops_assets.prediction_log import (
    PredictionLog,
    ScoredBatch,
    log_frame,
    read_prediction_log,
)
from mlops_assets.specs import UseCaseSpec
from mlops_assets.storage.objectstore import LocalObjectStore
from mlops_assets_tests.harness.records import record


def batch(spec: UseCaseSpec, ids: list[str], counts: list[int], **changes: Any) -> ScoredBatch:
    raw = pd.DataFrame([record(**changes) for _ in range(sum(counts))])
    cleaned, _ = clean_frame(raw, spec)
    return ScoredBatch(ids, counts, cleaned, np.arange(sum(counts), dtype=float), "m", "3")


def test_close_writes_every_queued_row(spec: UseCaseSpec, tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    log = PredictionLog(store, spec, flush_interval_s=3600)
    for index in range(50):
        log.append(batch(spec, [f"r{index}a", f"r{index}b"], [1, 2]))
    assert read_prediction_log(store, spec.name).empty
    log.close()
    log.close()
    logged = read_prediction_log(store, spec.name)
    assert len(logged) == 150 and logged["request_id"].nunique() == 100
    assert logged.groupby("request_id")["record"].max().max() == 1
    assert set(logged["model_version"]) == {"3"}
    assert (log.rows_written, log.files_written) == (150, 1)
    with pytest.raises(RuntimeError):
        log.append(batch(spec, ["late"], [1]))


def test_interval_flushes_while_running(spec: UseCaseSpec, tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    log = PredictionLog(store, spec, flush_interval_s=0.05)
    log.append(batch(spec, ["a"], [1]))
    deadline = dt.datetime.now() + dt.timedelta(seconds=5)
    while read_prediction_log(store, spec.name).empty and dt.datetime.now() < deadline:
        pass
    assert len(read_prediction_log(store, spec.name)) == 1
    log.close()


def test_column_types_do_not_depend_on_the_values(spec: UseCaseSpec) -> None:
    full = log_frame([batch(spec, ["a"], [1])], spec)
    empty_values = log_frame(
        [
            batch(
                spec, ["b"], [1], Item_Weight=None, Outlet_Size=None, Outlet_Establishment_Year=None
            )
        ],
        spec,
    )
    assert full.dtypes.to_dict() == empty_values.dtypes.to_dict()
    assert str(full["Outlet_Size"].dtype) == "string"
    assert str(full["Outlet_Establishment_Year"].dtype) == "Int64"


def test_a_failed_write_is_retried(spec: UseCaseSpec, tmp_path: Path) -> None:
    class FlakyStore(LocalObjectStore):
        failures = 1

        def put_bytes(self, key: str, data: bytes) -> None:
            if self.failures:
                self.failures -= 1
                raise OSError("disk unavailable")
            super().put_bytes(key, data)

    store = FlakyStore(tmp_path)
    log = PredictionLog(store, spec, flush_interval_s=0.05)
    log.append(batch(spec, ["a"], [2]))
    deadline = dt.datetime.now() + dt.timedelta(seconds=5)
    while log.rows_written < 2 and dt.datetime.now() < deadline:
        pass
    log.close()
    assert len(read_prediction_log(store, spec.name)) == 2


def test_classifier_rows_keep_labels_and_probabilities(tmp_path: Path) -> None:
    from mlops_assets.generators import get_generator
    from mlops_assets.specs import use_case_specs

    spec = use_case_specs()["loan_approval"]
    raw = get_generator(spec.generator or spec.name).generate(4, dt.date(2025, 1, 1), 1)
    cleaned, _ = clean_frame(raw, spec)
    classes = spec.target.classes or []
    probabilities = np.tile(np.linspace(1, 2, len(classes)), (len(cleaned), 1))
    labels = np.array([classes[0]] * len(cleaned), dtype=object)
    scored = ScoredBatch(["a"], [len(cleaned)], cleaned, labels, "m", "1", probabilities)
    store = LocalObjectStore(tmp_path)
    log = PredictionLog(store, spec, flush_interval_s=3600)
    log.append(scored)
    log.close()
    logged = read_prediction_log(store, spec.name)
    assert logged["prediction"].tolist() == [classes[0]] * len(cleaned)
    assert [f"proba_{c}" for c in classes] == [c for c in logged.columns if c.startswith("proba_")]
