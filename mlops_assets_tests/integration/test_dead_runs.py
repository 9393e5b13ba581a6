"""A killed ``mlops refresh`` does not switch automatic retraining off.

Seen on a fresh clone: after ``kill -9`` of ``mlops refresh bigmart_sales`` during tuning, the
run stayed STARTED forever and the retrain sensor skipped every tick with "a retrain of
bigmart_sales is already running"; its MLflow run and Optuna trial stayed RUNNING. Now the
sensor's next evaluation reaps the dead run (its heartbeat's process is gone) and requests a
retrain, on the embedded default (SQLite instance, file lock), as ``make demo`` runs it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets import names
from mlops_assets.components.resources import resources_for
from mlops_assets.environment import Environment
from mlops_assets.ops.demo import land_generated_days
from mlops_assets.ops.launch import instance, load_definitions
from mlops_assets_tests.harness.processes import venv_executable

pytestmark = pytest.mark.integration
UC = "bigmart_sales"


def _running_trials(url: str) -> list[str]:
    import optuna

    storage = optuna.storages.get_storage(url)
    return [
        f"{study.study_name}#{trial.number}"
        for study in storage.get_all_studies()
        for trial in storage.get_all_trials(
            study._study_id, states=(optuna.trial.TrialState.RUNNING,)
        )
    ]


def _wait_for_a_running_trial(env: Environment, process: subprocess.Popen, log: Path) -> None:
    database = env.home / "optuna.db"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        if database.exists():
            try:
                if _running_trials(env.optuna_url):
                    return
            except Exception:  # noqa: BLE001 - the study's tables are being created
                pass
        time.sleep(0.5)
    raise AssertionError(f"no Optuna trial started within 300 s:\n{log.read_text()[-3000:]}")


def test_a_refresh_killed_mid_tuning_does_not_stop_automatic_retraining(
    mlops_home: Path, tmp_path: Path
) -> None:
    env = Environment.from_env()
    land_generated_days(env, UC, days=7, rows=300, seed=5)  # K = 7: the policy's evidence
    log = tmp_path / "refresh.log"
    with log.open("wb") as output:
        refresh = subprocess.Popen(
            [str(venv_executable("mlops")), "refresh", UC, "--trials", "200"],
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_for_a_running_trial(env, refresh, log)
    finally:
        os.killpg(refresh.pid, signal.SIGKILL)
        refresh.wait()

    dagster = instance(env)
    retrain = names.retrain_job(UC)
    [dead] = dagster.get_run_records(dg.RunsFilter(job_name=retrain))
    assert dead.dagster_run.status == dg.DagsterRunStatus.STARTED  # what the kill left
    assert dead.dagster_run.tags[names.HEARTBEAT_PID_TAG] == str(refresh.pid)
    assert _running_trials(env.optuna_url)

    sensor = load_definitions().get_sensor_def(names.retrain_sensor(UC))
    with dg.build_sensor_context(instance=dagster, resources=resources_for(env)) as context:
        tick = sensor.evaluate_tick(context)
    assert tick.skip_message is None, tick.skip_message  # was "a retrain ... already running"
    [request] = tick.run_requests
    assert "new_partitions" in request.tags[names.TRIGGER_TAG]

    run = dagster.get_run_by_id(dead.dagster_run.run_id)
    assert run is not None and run.status == dg.DagsterRunStatus.FAILURE
    assert f"pid {refresh.pid}" in run.tags[names.REAPED_TAG]
    assert _running_trials(env.optuna_url) == []
    client = env.tracking().client()
    experiment = client.get_experiment_by_name(UC)
    mlflow_runs = client.search_runs([experiment.experiment_id])
    assert mlflow_runs and {r.info.status for r in mlflow_runs} <= {"FAILED", "FINISHED"}
    tuning = [r for r in mlflow_runs if r.data.tags.get(names.DAGSTER_RUN_TAG) == run.run_id]
    assert [r.info.status for r in tuning] == ["FAILED"]
    locks = env.locks()
    locks.acquire(UC)  # the kernel released the dead run's file lock
    locks.release_all()
