"""A worker whose parent dies stops: SIGKILL of ``bentoml serve`` used to leave it serving."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[2]
CHILD = """
import signal, sys, time
from mlops_assets.serving.worker import exit_with_parent
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # as uvicorn's graceful shutdown would
exit_with_parent(poll_s=0.05, grace_s=5)
print("watching", flush=True)
time.sleep(600)
"""
PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[1]], stdout=subprocess.PIPE,
                         start_new_session=True)  # a group of its own, like BentoML's worker
assert child.stdout.readline() == b"watching\\n"
print(child.pid, flush=True)
time.sleep(600)
"""


def test_the_worker_exits_when_its_parent_is_killed() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, CHILD], stdout=subprocess.PIPE, env=env
    )
    assert parent.stdout is not None
    child = psutil.Process(int(parent.stdout.readline()))
    try:
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        child.wait(timeout=10)  # psutil.TimeoutExpired before the watcher existed
    finally:
        if child.is_running():
            child.kill()
    assert not child.is_running()


def test_a_live_parent_keeps_its_worker() -> None:
    from mlops_assets.serving.worker import exit_with_parent

    watcher = exit_with_parent(poll_s=0.01)
    time.sleep(0.1)
    assert watcher.is_alive()
