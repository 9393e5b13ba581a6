"""Servers failing in the middle of a run, on the production configuration.

* The object store stops while a day is being ingested: the step fails naming the store and the
  key, the storage retry policy retries it with backoff, the run completes once the store is
  back, and no reader ever sees a partial object.
* The tracking server goes down during tuning: the run fails before the promotion gate and the
  ``champion`` alias stays where it was.
"""

from __future__ import annotations

import datetime as dt
import io
import threading
from collections.abc import Iterator
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from mlops_assets.storage.objectstore import S3ObjectStore, StorageError
from mlops_assets_tests.integration.stack import (
    BUCKET,
    ROWS,
    UC,
    ProductionStack,
    champion_version,
    production_stack,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def stack(
    postgres_server, s3_server, mlflow_server, tmp_path_factory, monkeypatch, request
) -> ProductionStack:
    return production_stack(
        postgres_server, s3_server, mlflow_server, tmp_path_factory, monkeypatch, request
    )


def _messages(error: Any) -> Iterator[str]:
    """The messages of a serialized error and of its causes and contexts."""
    while error is not None:
        yield error.message
        yield from _messages(error.context) if error.context is not None else ()
        error = error.cause


def _step_events(stack: ProductionStack, run_id: str, step: str) -> list[Any]:
    return [
        record.dagster_event
        for record in stack.instance.all_logs(run_id)
        if record.dagster_event is not None and record.dagster_event.step_key == step
    ]


class PartialReadWatcher:
    """Reads every table object again and again while a run writes; records unreadable ones."""

    def __init__(self, store: S3ObjectStore, prefix: str) -> None:
        self.store, self.prefix = store, prefix
        self.partial: list[str] = []
        self.reads = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> PartialReadWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                objects = self.store.list(self.prefix)
            except StorageError:  # the store is down
                objects = []
            for info in objects:
                if not info.key.endswith(".parquet"):
                    continue
                try:
                    data = self.store.get_bytes(info.key)
                except (StorageError, FileNotFoundError):
                    continue
                try:
                    pd.read_parquet(io.BytesIO(data))
                    self.reads += 1
                except Exception:  # a torn write would land here
                    self.partial.append(info.key)
            self._stop.wait(0.05)


def test_object_store_outage_mid_run_is_retried_and_never_half_written(
    stack: ProductionStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlops_assets import names
    from mlops_assets.components.ingest import range_tags
    from mlops_assets.ops.demo import land_generated_days
    from mlops_assets.ops.launch import execute

    day = (dt.date.fromisoformat(min(stack.days)) - dt.timedelta(days=1)).isoformat()
    env = stack.environment()
    land_generated_days(env, UC, days=1, rows=ROWS, seed=11, end=dt.date.fromisoformat(day))
    clean_key = f"{UC}/clean_data/{day}.parquet"
    restarted: list[threading.Thread] = []
    original = S3ObjectStore.put_bytes

    def store_dies_before_the_write(self: S3ObjectStore, key: str, data: bytes) -> None:
        if key == clean_key and not restarted:  # raw_data is stored; clean_data is not yet
            stack.s3.stop()
            restarted.append(threading.Thread(target=stack.s3.start))
            restarted[0].start()  # back in a few seconds, while the retries wait
        original(self, key, data)

    monkeypatch.setattr(S3ObjectStore, "put_bytes", store_dies_before_the_write)
    with PartialReadWatcher(stack.store("storage"), f"{UC}/") as watcher:
        outcome = execute(
            stack.definitions(), names.ingest_job(UC), stack.instance, tags=range_tags(day, day)
        )
    for thread in restarted:
        thread.join(60)

    assert restarted, "the store was never stopped"
    assert outcome.success, outcome.errors
    step = f"{UC}__clean_data"
    retries = [e for e in _step_events(stack, outcome.run_id, step) if e.is_step_up_for_retry]
    assert retries, "the failed write was not retried"
    first_failure = " | ".join(_messages(retries[0].event_specific_data.error))
    assert stack.s3.endpoint_url in first_failure  # the store...
    assert f"s3://{BUCKET}/storage/{clean_key}" in first_failure  # ...and the key
    assert watcher.partial == [] and watcher.reads > 0
    clean = pd.read_parquet(io.BytesIO(stack.store("storage").get_bytes(clean_key)))
    assert len(clean) == ROWS


def test_tracking_server_down_during_tuning_fails_before_promotion(
    stack: ProductionStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlops_assets import names
    from mlops_assets.components import training as training_assets
    from mlops_assets.ops.launch import execute

    before = champion_version(stack)
    assert before is not None  # the shared flow promoted a champion
    original = training_assets.log_trial
    logged: list[int] = []

    def server_dies_after_the_first_trial(trial: Any, *args: Any) -> None:
        if len(logged) == 1:
            stack.mlflow.stop()
        logged.append(trial.number)
        original(trial, *args)

    monkeypatch.setattr(training_assets, "log_trial", server_dies_after_the_first_trial)
    config = {"ops": {f"{UC}__tuned_model": {"config": {"n_trials": 40, "n_workers": 1}}}}
    try:
        outcome = execute(
            stack.definitions(), names.retrain_job(UC), stack.instance, run_config=config
        )
    finally:
        stack.mlflow.start()

    assert len(logged) == 2  # the search stopped at the first trial it could not log
    assert not outcome.success
    [failure] = [
        e for e in _step_events(stack, outcome.run_id, f"{UC}__tuned_model") if e.is_step_failure
    ]
    message = " | ".join(_messages(failure.event_specific_data.error))
    assert f"{stack.mlflow.url}/api/" in message and "Connection refused" in message
    gate = _step_events(stack, outcome.run_id, f"{UC}__champion_model")
    assert gate and not any(e.is_step_start or e.is_step_success for e in gate)
    materialized = {
        r.dagster_event.event_specific_data.materialization.asset_key
        for r in stack.instance.all_logs(
            outcome.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
        )
    }
    assert dg.AssetKey([UC, "champion_model"]) not in materialized
    assert champion_version(stack) == before  # the server is back: the alias did not move
