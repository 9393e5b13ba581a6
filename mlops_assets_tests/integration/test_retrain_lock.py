"""Two retraining runs of one use case never overlap and never both promote.

The lock is a PostgreSQL advisory lock here (the stack's Optuna database is PostgreSQL), held
by a connection of the run that took it; each run below is a real Dagster run of the
``bigmart_sales__retrain`` job against the PostgreSQL instance, as ``mlops refresh`` (and the
daemon's run worker) executes it.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from mlops_assets.registry.lock import RetrainLockError, RetrainLocks
from mlops_assets_tests.harness.postgres import PostgresServer
from mlops_assets_tests.integration.stack import (
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


def test_advisory_lock_excludes_a_second_holder_and_names_it(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    url = postgres_server.create_database("locks")
    first, second = RetrainLocks(url, tmp_path), RetrainLocks(url, tmp_path)
    assert first.backend() == "postgres"
    first.acquire("uc")
    first.acquire("uc")  # each retrain step asks again: still held, nothing to do
    try:
        with pytest.raises(RetrainLockError) as error:
            second.acquire("uc")
        message = str(error.value)
        assert "retrain of uc is already running" in message
        assert "PostgreSQL advisory lock" in message and f"pid {os.getpid()}" in message
        assert postgres_server.password not in message
        second.acquire("another_use_case")
    finally:
        first.release_all()
    second.acquire("uc")
    second.release_all()


def test_advisory_lock_of_a_killed_process_is_released(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    url = postgres_server.create_database("locks")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from mlops_assets.registry.lock import RetrainLocks\n"
            f"RetrainLocks({url!r}, {str(tmp_path)!r}).acquire('uc')\n"
            "print('held', flush=True)\n"
            "time.sleep(120)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(RetrainLockError, match=f"pid {holder.pid}"):
            RetrainLocks(url, tmp_path).acquire("uc")
    finally:
        holder.kill()
        holder.wait(10)
    lock = RetrainLocks(url, tmp_path)
    for _ in range(50):  # the server notices the dropped connection within moments
        try:
            lock.acquire("uc")
            break
        except RetrainLockError:
            threading.Event().wait(0.1)
    else:
        pytest.fail("the killed holder's advisory lock was never released")
    lock.release_all()


def _retrain_process(start: Any, results: Any, run_config: dict) -> None:
    """One retraining run in a process of its own, as ``mlops refresh`` or a run worker does it."""
    from mlops_assets import names
    from mlops_assets.environment import Environment
    from mlops_assets.ops.launch import execute, instance, load_definitions

    definitions, dagster_instance = load_definitions(), instance(Environment.from_env())
    job = names.retrain_job(UC)
    start.wait(120)  # both processes have imported everything: start the runs together
    outcome = execute(
        definitions, job, dagster_instance, run_config=run_config, tags={"mlops/trigger": "race"}
    )
    results.put(outcome)
    dagster_instance.dispose()


def test_two_retrain_runs_started_at_once_one_promotes(stack: ProductionStack) -> None:
    """With no champion both runs would promote their challenger; exactly one runs at all.

    Processes, not threads: Dagster reconfigures Python logging at each run start, which can
    deadlock two runs starting in threads of one process (never the case in a deployment).
    """
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=stack.mlflow.url, registry_uri=stack.mlflow.url)
    if champion_version(stack) is not None:
        client.delete_registered_model_alias(UC, "champion")
    versions_before = {v.version for v in client.search_model_versions(f"name = '{UC}'")}
    config = {"ops": {f"{UC}__tuned_model": {"config": {"n_trials": 4, "n_workers": 1}}}}
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(2), context.Queue()
    processes = [
        context.Process(target=_retrain_process, args=(start, results, config)) for _ in range(2)
    ]
    for process in processes:
        process.start()
    try:
        outcomes = [results.get(timeout=300) for _ in processes]
    finally:
        for process in processes:
            process.join(30)
            if process.exitcode is None:
                process.kill()
    [winner] = [o for o in outcomes if o.success]
    [loser] = [o for o in outcomes if not o.success]

    message = " ".join(loser.errors)
    assert f"retrain of {UC} is already running" in message, loser.errors
    assert winner.run_id in message  # the holder is named
    assert not stack.instance.all_logs(
        loser.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    )  # the loser wrote nothing

    new_versions = [
        v
        for v in client.search_model_versions(f"name = '{UC}'")
        if v.version not in versions_before
    ]
    [registered] = new_versions  # one challenger registered, by the winner
    assert champion_version(stack) == registered.version  # the alias moved once, to the winner's
    assert client.get_model_version(UC, registered.version).tags.get("promoted_at")
