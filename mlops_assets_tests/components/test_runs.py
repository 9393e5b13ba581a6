"""Dead runs are noticed: a run's heartbeat names its process, the reaper fails it once gone.

Before, a run whose process was killed stayed STARTED forever (Dagster's default run launcher
does not check run processes; ``execute_in_process`` has no launcher at all).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets import names
from mlops_assets.components.runs import reap_dead_runs, run_process, why_dead
from mlops_assets.registry.heartbeat import ProcessIdentity, now
from mlops_assets_tests.harness.runs import killed_run

REPO = Path(__file__).resolve().parents[2]


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _tags(identity: ProcessIdentity, beat: str | None = None) -> dict[str, str]:
    tags = {
        names.HEARTBEAT_HOST_TAG: identity.host,
        names.HEARTBEAT_PID_TAG: str(identity.pid),
        names.HEARTBEAT_STARTED_TAG: identity.started,
    }
    if beat is not None:
        tags[names.HEARTBEAT_AT_TAG] = beat
    return tags


def test_a_live_process_is_alive_and_a_dead_one_is_gone() -> None:
    me = ProcessIdentity.current()
    assert me.started and me.gone() is False
    assert why_dead(_tags(me, now().isoformat())) is None
    dead = ProcessIdentity(me.host, _dead_pid(), "1")
    assert dead.gone() is True
    assert "is gone" in (why_dead(_tags(dead)) or "")
    reused = ProcessIdentity(me.host, me.pid, "12345")  # same pid, another process
    assert reused.gone() is True
    assert why_dead({}) is None  # no heartbeat: cannot tell, left alone


def test_on_another_host_only_a_stale_heartbeat_says_dead() -> None:
    far = ProcessIdentity("another-host", 1, "")
    fresh = now().isoformat()
    assert far.gone() is None and why_dead(_tags(far, fresh)) is None
    old = "2020-01-01T00:00:00+00:00"
    assert "no heartbeat since 2020" in (why_dead(_tags(far, old), stale_after_s=60) or "")


def test_a_killed_run_is_reported_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "dagster"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    pid = killed_run()
    with dg.DagsterInstance.get() as instance:
        [record] = instance.get_run_records()
        run = record.dagster_run
        assert run.status == dg.DagsterRunStatus.STARTED
        recorded = run_process(dict(run.tags))
        assert recorded is not None and recorded.pid == pid and recorded.started
        assert names.HEARTBEAT_AT_TAG in run.tags
        lines: list[str] = []
        [reaped] = reap_dead_runs(instance, log=lines.append)
        assert reaped.run_id == run.run_id and f"pid {pid}" in reaped.why
        after = instance.get_run_by_id(run.run_id)
        assert after is not None and after.status == dg.DagsterRunStatus.FAILURE
        assert after.tags[names.REAPED_TAG] == reaped.why
        failure = [
            e for e in instance.all_logs(run.run_id) if e.dagster_event_type == "PIPELINE_FAILURE"
        ]
        assert failure and "Marked failed by mlops" in failure[-1].message
        assert reap_dead_runs(instance) == []  # once
        assert lines and run.run_id in lines[0]


def test_a_live_run_is_left_alone(tmp_path: Path) -> None:
    """The heartbeat beats while the run lives; the reaper, called meanwhile, leaves it."""
    from mlops_assets.components.runs import RunHeartbeat, heartbeat_hook

    seen: list[list] = []

    @dg.op
    def look(context) -> None:  # unannotated: Dagster would read a string annotation here
        time.sleep(1.2)
        seen.append(reap_dead_runs(context.instance))
        run = context.instance.get_run_by_id(context.run_id)
        assert run is not None and run.tags[names.HEARTBEAT_PID_TAG] == str(os.getpid())

    @dg.job(hooks={heartbeat_hook})
    def alive() -> None:
        look()

    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = alive.execute_in_process(
            instance=instance, resources={"run_heartbeat": RunHeartbeat(interval_s=0.5)}
        )
        assert result.success and seen == [[]]
