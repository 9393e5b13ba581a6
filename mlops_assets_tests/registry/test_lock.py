"""The retrain lock's file backend: one holder per use case, released at run end or on a crash.

The PostgreSQL backend and two whole retraining runs racing are tested against a real server in
``mlops_assets_tests/integration/test_retrain_lock.py``.
"""

import subprocess
import sys
import threading
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets.components.resources import RetrainLock
from mlops_assets.environment import Environment
from mlops_assets.registry.lock import RetrainLockError, RetrainLocks, lock_key


def test_second_holder_fails_fast_naming_the_first(tmp_path: Path) -> None:
    first, second = RetrainLocks(None, tmp_path), RetrainLocks(None, tmp_path)
    assert first.backend() == "file"
    first.acquire("uc")
    first.acquire("uc")  # the holder may ask again (each retrain step does)
    with pytest.raises(RetrainLockError, match="retrain of uc is already running") as error:
        second.acquire("uc")
    assert f"{tmp_path / 'retrain-uc.lock'}" in str(error.value)
    assert "pid" in str(error.value) and "since" in str(error.value)
    second.acquire("other_use_case")  # locks are per use case

    first.release_all()
    second.acquire("uc")
    second.release_all()


def test_settings_pick_the_backend(mlops_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def backend() -> str:
        return Environment.from_env().locks().backend()

    assert backend() == "file"
    monkeypatch.setenv("MLOPS_OPTUNA_STORAGE", "postgresql+psycopg2://u:p@db:5432/optuna")
    assert backend() == "postgres"
    monkeypatch.setenv("MLOPS_OPTUNA_STORAGE", f"sqlite:///{mlops_home}/optuna.db")
    assert backend() == "file"
    monkeypatch.setenv("MLOPS_LOCK_URL", "postgresql+psycopg2://u:p@db:5432/dagster")
    assert backend() == "postgres"
    assert lock_key("uc") == lock_key("uc") != lock_key("other") and 0 < lock_key("uc") < 2**63


def test_a_run_holds_the_lock_until_it_ends(tmp_path: Path) -> None:
    """Two runs of assets that take the lock: the second fails naming the first run."""
    holding, release = threading.Event(), threading.Event()

    @dg.asset(retry_policy=dg.RetryPolicy(max_retries=3, delay=5))  # as storage steps have
    def first_step(retrain_lock: RetrainLock) -> None:
        retrain_lock.acquire("uc")

    @dg.asset(deps=[first_step])
    def second_step(retrain_lock: RetrainLock) -> None:
        retrain_lock.acquire("uc")  # the same run: already held
        holding.set()
        assert release.wait(30)

    resources = {"retrain_lock": RetrainLock(lock_dir=str(tmp_path))}
    instance = dg.DagsterInstance.ephemeral()
    results: list[dg.ExecuteInProcessResult] = []
    thread = threading.Thread(
        target=lambda: results.append(
            dg.materialize([first_step, second_step], resources=resources, instance=instance)
        )
    )
    thread.start()
    try:
        assert holding.wait(30)
        loser = dg.materialize(
            [first_step], resources=resources, instance=instance, raise_on_error=False
        )
    finally:
        release.set()
        thread.join(30)
    assert not loser.success
    assert not [e for e in loser.all_events if e.is_step_up_for_retry]  # fails fast, no retry
    [failure] = [e for e in loser.all_events if e.is_step_failure]
    message = str(failure.step_failure_data.error.to_string())
    assert "retrain of uc is already running" in message
    assert results[0].run_id in message
    assert results[0].success
    # The winner's run is over: its lock was released with it.
    assert dg.materialize([first_step], resources=resources, instance=instance).success


def test_a_crashed_holder_releases_the_lock(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pathlib import Path\n"
            "from mlops_assets.registry.lock import RetrainLocks\n"
            f"RetrainLocks(None, Path({str(tmp_path)!r})).acquire('uc')\n"
            "print('held', flush=True)\n"
            "time.sleep(120)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(RetrainLockError, match=f"pid {holder.pid}"):
            RetrainLocks(None, tmp_path).acquire("uc")
    finally:
        holder.kill()
        holder.wait(10)
    lock = RetrainLocks(None, tmp_path)
    lock.acquire("uc")  # the kernel released the dead holder's lock
    lock.release_all()
