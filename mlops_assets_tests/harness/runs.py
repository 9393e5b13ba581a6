"""A Dagster run whose process was killed: what a ``kill -9`` of ``mlops refresh`` leaves behind.

:func:`killed_run` starts a job with the run heartbeat in a process of its own, against the
instance in ``DAGSTER_HOME``, waits until its op runs, and SIGKILLs the process: the run stays
STARTED, tagged with the dead process. Used by the reaper's tests (``components/test_runs.py``,
``test_cli.py``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

__all__ = ["killed_run"]

REPO = Path(__file__).resolve().parents[2]
STUCK_RUN = """
import sys, time
import dagster as dg
from mlops_assets.components.runs import RunHeartbeat, heartbeat_hook

@dg.op
def forever() -> None:
    print("running", flush=True)
    time.sleep(600)

@dg.job(hooks={heartbeat_hook})
def stuck() -> None:
    forever()

stuck.execute_in_process(
    instance=dg.DagsterInstance.get(), resources={"run_heartbeat": RunHeartbeat(interval_s=1)}
)
"""


def killed_run() -> int:
    """Run a job that never ends in a process of its own, SIGKILL it once running; its pid."""
    process = subprocess.Popen(
        [sys.executable, "-c", STUCK_RUN],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == b"running\n"
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    return process.pid
