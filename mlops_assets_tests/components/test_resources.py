"""Corrupt stored data fails a step at once, naming the object; transient errors still retry.

A truncated ``clean_data/<day>.parquet`` failed the retrain with pyarrow's "magic bytes not
found" after 26 s of retries (the storage retry policy retries any exception), naming neither
the day nor the object.
"""

import time
from pathlib import Path

import dagster as dg
import pandas as pd

from mlops_assets import names
from mlops_assets.components.resources import (
    STORAGE_RETRY_POLICY,
    ObjectStorage,
    ParquetIOManager,
)


def _events(result: dg.ExecuteInProcessResult, kind: str) -> list[dg.DagsterEvent]:
    return [e for e in result.all_events if e.event_type_value == kind]


def _innermost(event: dg.DagsterEvent) -> str:
    error = event.step_failure_data.error
    text = error.message
    while error.cause is not None:
        error = error.cause
        text += " | " + error.message
    return text


def test_a_corrupt_input_partition_is_not_retried(tmp_path: Path) -> None:
    partitions = dg.DailyPartitionsDefinition(start_date="2025-01-01")

    @dg.asset(key=["uc", "table"], partitions_def=partitions)
    def table(context: dg.AssetExecutionContext) -> pd.DataFrame:
        return pd.DataFrame({"day": [context.partition_key]})

    @dg.asset(key=["uc", "reader"], partitions_def=partitions, retry_policy=STORAGE_RETRY_POLICY)
    def reader(table: pd.DataFrame) -> pd.DataFrame:
        return table

    resources = {"io_manager": ParquetIOManager(storage=ObjectStorage(uri=str(tmp_path)))}
    assert dg.materialize([table], partition_key="2025-01-02", resources=resources).success
    stored = tmp_path / "uc" / "table" / "2025-01-02.parquet"
    stored.write_bytes(stored.read_bytes()[:40])  # an upload cut short
    started = time.monotonic()
    result = dg.materialize(
        [table.to_source_asset(), reader],
        partition_key="2025-01-02",
        resources=resources,
        raise_on_error=False,
    )
    assert not result.success and time.monotonic() - started < 5  # was 26 s of retries
    assert _events(result, "STEP_UP_FOR_RETRY") == []
    [failure] = _events(result, "STEP_FAILURE")
    message = _innermost(failure)
    assert "uc/table/2025-01-02.parquet" in message and "not a readable Parquet" in message
    assert "not retried" in message


def test_a_corrupt_clean_day_fails_the_retrain_at_once(mlops_home: Path) -> None:
    from mlops_assets.environment import Environment
    from mlops_assets.ops.demo import land_generated_days
    from mlops_assets.ops.launch import load_definitions, refresh
    from mlops_assets.specs import use_case_specs

    env = Environment.from_env()
    spec = use_case_specs()["bigmart_sales"]
    [day, _] = land_generated_days(env, spec.name, days=2, rows=200, seed=4)
    instance = dg.DagsterInstance.ephemeral()
    definitions = load_definitions()
    assert refresh(spec, env, definitions, instance, train=False).success
    clean = Path(env.storage_uri) / spec.name / names.CLEAN_DATA / f"{day}.parquet"
    clean.write_bytes(clean.read_bytes()[: clean.stat().st_size // 2])
    started = time.monotonic()
    outcome = refresh(spec, env, definitions, instance, n_trials=1)
    assert outcome.retrain is not None and not outcome.retrain.success
    assert time.monotonic() - started < 20
    [error] = outcome.retrain.errors
    assert f"clean_data/{day}.parquet" in error and "not retried" in error, error
    events = instance.all_logs(outcome.retrain.run_id)
    assert not [e for e in events if e.dagster_event_type == "STEP_UP_FOR_RETRY"]
