"""The whole BigMart flow on the production configuration, against real servers.

Environment variables only (see ``stack.py``): S3 tables and landing zone, a PostgreSQL Dagster
instance, the MLflow tracking server with artifacts in the bucket, Optuna in PostgreSQL with two
worker processes. The flow runs once (``mlops_assets.ops.launch.refresh``); each test checks
that one kind of state went where the deployment expects it.
"""

from __future__ import annotations

import io
import os

import dagster as dg
import pandas as pd
import pytest

from mlops_assets_tests.integration.stack import (
    DAGSTER_DATABASE,
    DAYS,
    OPTUNA_DATABASE,
    ROWS,
    TRIALS,
    UC,
    ProductionStack,
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


def _materialization(stack: ProductionStack, run_id: str, asset: str) -> dict:
    records = stack.instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    [event] = [
        r.dagster_event.event_specific_data.materialization
        for r in records
        if r.dagster_event.event_specific_data.materialization.asset_key == dg.AssetKey([UC, asset])
    ]
    return {k: v.value for k, v in event.metadata.items()}


def test_the_flow_succeeds(stack: ProductionStack) -> None:
    flow = stack.flow
    errors = [r.errors for r in flow.ingested] + [flow.retrain.errors if flow.retrain else None]
    assert flow.success, errors
    # One run per landed day (a one-day range, named by its day).
    assert [r.partition for r in flow.ingested] == stack.days and len(stack.days) == DAYS


def test_tables_are_parquet_objects_in_the_bucket(stack: ProductionStack) -> None:
    # (Other tests land and ingest more days later on: check the flow's days are there.)
    store = stack.store("storage")
    for asset in ("raw_data", "clean_data"):
        keys = {info.key for info in store.list(f"{UC}/{asset}/")}
        assert {f"{UC}/{asset}/{day}.parquet" for day in stack.days} <= keys
        first = store.get_bytes(f"{UC}/{asset}/{stack.days[0]}.parquet")
        assert len(pd.read_parquet(io.BytesIO(first))) == ROWS
    train = pd.read_parquet(io.BytesIO(store.get_bytes(f"{UC}/train_set.parquet")))
    test = pd.read_parquet(io.BytesIO(store.get_bytes(f"{UC}/test_set.parquet")))
    assert set(stack.days) <= set(train["_landed_date"]) and len(test) > 0
    landed = [info.key.split("/") for info in stack.store("landing").list(f"{UC}/")]
    assert set(stack.days) <= {day for _, day, name in landed if name.endswith(".csv")}
    # Nothing of the flow was written to the local disk.
    assert not (stack.home / "storage").exists() and not (stack.home / "landing").exists()


def test_runs_and_events_are_in_postgres(stack: ProductionStack) -> None:
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage
    from dagster_postgres.schedule_storage import PostgresScheduleStorage

    assert isinstance(stack.instance.run_storage, PostgresRunStorage)
    assert isinstance(stack.instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(stack.instance.schedule_storage, PostgresScheduleStorage)
    run_ids = [r.run_id for r in stack.flow.ingested] + [stack.flow.retrain.run_id]
    rows = stack.query(
        DAGSTER_DATABASE,
        "SELECT pipeline_name, status FROM runs WHERE run_id = ANY(%(ids)s)",
        ids=run_ids,
    )
    assert sorted(rows) == sorted(
        [(f"{UC}__ingest", "SUCCESS")] * DAYS + [(f"{UC}__retrain", "SUCCESS")]
    )
    [(materialized,)] = stack.query(
        DAGSTER_DATABASE,
        "SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION' "
        "AND asset_key = %(key)s AND run_id = ANY(%(ids)s)",
        key=dg.AssetKey([UC, "raw_data"]).to_string(),
        ids=run_ids,
    )
    assert materialized == DAYS


def test_champion_alias_is_set_on_the_tracking_server(stack: ProductionStack) -> None:
    from mlflow import MlflowClient

    gate = _materialization(stack, stack.flow.retrain.run_id, "champion_model")
    tuned = _materialization(stack, stack.flow.retrain.run_id, "tuned_model")
    assert gate["champion_version"] == stack.champion_after_flow
    assert gate["challenger_version"] == tuned["model_version"]
    client = MlflowClient(tracking_uri=stack.mlflow.url, registry_uri=stack.mlflow.url)
    version = client.get_model_version(UC, stack.champion_after_flow)
    assert version.tags.get("test_rmse")
    assert client.get_run(tuned["mlflow_run_id"]).data.tags["dagster.run_id"] == (
        stack.flow.retrain.run_id
    )


def test_optuna_trials_are_in_postgres_from_two_overlapping_workers(
    stack: ProductionStack,
) -> None:
    tuned = _materialization(stack, stack.flow.retrain.run_id, "tuned_model")
    rows = stack.query(
        OPTUNA_DATABASE,
        "SELECT t.number, t.state, t.datetime_start, t.datetime_complete, a.value_json "
        "FROM trials t JOIN studies s ON s.study_id = t.study_id "
        "JOIN trial_user_attributes a ON a.trial_id = t.trial_id AND a.key = 'pid' "
        "WHERE s.study_name = %(name)s AND t.datetime_start <= %(ended)s ORDER BY t.number",
        name=tuned["optuna_study"],
        ended=stack.flow_ended_at,
    )
    assert len(rows) == TRIALS
    assert {state for _, state, *_ in rows} <= {"COMPLETE", "PRUNED", "FAIL"}
    by_pid: dict[str, list[tuple]] = {}
    for _, _, start, end, pid in rows:
        by_pid.setdefault(pid, []).append((start, end))
    assert len(by_pid) == 2, by_pid  # two worker processes...
    (first, second) = by_pid.values()
    assert any(
        a_start < b_end and b_start < a_end for a_start, a_end in first for b_start, b_end in second
    ), by_pid  # ...searching at the same time
    threads = stack.query(
        OPTUNA_DATABASE,
        "SELECT DISTINCT a.value_json FROM trial_user_attributes a "
        "JOIN trials t ON t.trial_id = a.trial_id JOIN studies s ON s.study_id = t.study_id "
        "WHERE a.key = 'threads' AND s.study_name = %(name)s AND t.datetime_start <= %(ended)s",
        name=tuned["optuna_study"],
        ended=stack.flow_ended_at,
    )
    # ...each fitting on its share of the cores, not all of them.
    assert [int(value) for (value,) in threads] == [max(1, (os.cpu_count() or 1) // 2)]
    # The run's log reports the workers and every trial as it finishes.
    messages = [
        r.user_message
        for r in stack.instance.all_logs(stack.flow.retrain.run_id)
        if r.step_key == f"{UC}__tuned_model"
    ]
    assert any("searching with 2 worker processes" in m for m in messages)
    assert sum(f"/{TRIALS}: " in m and "best so far" in m for m in messages) == TRIALS


def test_every_trial_is_a_nested_mlflow_run(stack: ProductionStack) -> None:
    from mlflow import MlflowClient

    tuned = _materialization(stack, stack.flow.retrain.run_id, "tuned_model")
    client = MlflowClient(tracking_uri=stack.mlflow.url)
    parent = client.get_run(tuned["mlflow_run_id"])
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert len(children) == TRIALS
    assert {c.info.status for c in children} == {"FINISHED"}
    assert {c.data.tags["optuna.state"] for c in children} <= {"complete", "pruned", "failed"}


def test_model_artifacts_are_in_the_bucket(stack: ProductionStack) -> None:
    from mlflow import MlflowClient

    from mlops_assets.storage.objectstore import S3ObjectStore

    client = MlflowClient(tracking_uri=stack.mlflow.url, registry_uri=stack.mlflow.url)
    location = client.get_model_version_download_uri(UC, stack.champion_after_flow)
    assert location.startswith("mlflow-artifacts:/"), location  # served by the tracking server...
    bucket = S3ObjectStore(
        stack.mlflow.artifacts_destination,
        endpoint_url=stack.s3.endpoint_url,
        access_key_id=stack.s3.access_key,
        secret_access_key=stack.s3.secret_key,
    )
    keys = [info.key for info in bucket.list(location.removeprefix("mlflow-artifacts:/") + "/")]
    assert any(key.endswith("/MLmodel") for key in keys), keys  # ...and stored in the bucket
    assert any(key.endswith(".pkl") for key in keys), keys
