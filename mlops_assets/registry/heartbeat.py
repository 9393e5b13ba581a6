"""Which process runs something, whether it is still alive, and a heartbeat to tell from afar.

A Dagster run, an Optuna trial and a retrain lock are each held by one process. When that
process is killed (``kill -9``, out of memory, a lost machine) nothing records its end: the run
stays STARTED, the trial RUNNING. A :class:`ProcessIdentity` (host, pid and the process's start
time, so a reused pid is not mistaken for the same process) is recorded with the work; whoever
looks later asks :meth:`ProcessIdentity.gone`. On the same host the answer is certain; from
another host only a heartbeat that stopped (:class:`Heartbeat`) says so.
"""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
import os
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)


def process_started(pid: int) -> str:
    """When a process started, as the kernel counts it (Linux: clock ticks since boot).

    Empty where unknown (another system, no such process): then only the pid is compared.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else ""  # field 22 of the whole line: starttime


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[:1] != ["Z"]


@dataclass(frozen=True)
class ProcessIdentity:
    """A process: its host, pid and start time."""

    host: str
    pid: int
    started: str = ""

    @classmethod
    def current(cls) -> ProcessIdentity:
        """This process."""
        return cls(socket.gethostname(), os.getpid(), process_started(os.getpid()))

    @classmethod
    def orchestrator(cls) -> ProcessIdentity:
        """The process a unit of work belongs to: this one, or the one that started it.

        A step run by Dagster's multiprocess executor is a ``multiprocessing`` child of the
        run's process, and ends with its step while the run goes on: the run is its parent.
        """
        parent = multiprocessing.parent_process()
        if parent is None or parent.pid is None:
            return cls.current()
        return cls(socket.gethostname(), parent.pid, process_started(parent.pid))

    def as_dict(self) -> dict[str, str]:
        """As text values (run tags, trial attributes)."""
        return {"host": self.host, "pid": str(self.pid), "started": self.started}

    @classmethod
    def from_dict(cls, values: Mapping[str, object] | None) -> ProcessIdentity | None:
        """Back from :meth:`as_dict`; ``None`` if anything is missing."""
        if not values:
            return None
        try:
            return cls(str(values["host"]), int(str(values["pid"])), str(values.get("started", "")))
        except (KeyError, ValueError):
            return None

    def gone(self, host: str | None = None) -> bool | None:
        """Whether the process has ended; ``None`` when it ran on another host.

        From another host only its heartbeat can tell (:func:`stale`).
        """
        if self.host != (host or socket.gethostname()):
            return None
        if not pid_alive(self.pid):
            return True
        return bool(self.started) and process_started(self.pid) not in {"", self.started}


def now() -> dt.datetime:
    """The time a heartbeat records (UTC)."""
    return dt.datetime.now(dt.UTC)


def stale(beat: str | None, after_s: float, at: dt.datetime | None = None) -> bool:
    """Whether a heartbeat (an ISO time) is older than ``after_s`` seconds (or unreadable)."""
    if not beat:
        return True
    try:
        when = dt.datetime.fromisoformat(beat)
    except ValueError:
        return True
    return ((at or now()) - when).total_seconds() > after_s


class Heartbeat:
    """Calls ``beat()`` now and then every ``interval_s`` seconds, until :meth:`stop`.

    A failing beat is logged and retried at the next interval: a heartbeat never stops the work
    it reports on.
    """

    def __init__(self, beat: Callable[[], None], interval_s: float, name: str = "heartbeat"):
        self.beat = beat
        self.interval_s = interval_s
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Heartbeat:
        """Beat once, then in the background."""
        self._beat()
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stopped.wait(self.interval_s):
            self._beat()

    def _beat(self) -> None:
        try:
            self.beat()
        except Exception:  # noqa: BLE001 - a missed beat is retried, never fatal
            logger.warning("heartbeat %s failed; retrying", self._thread.name, exc_info=True)

    def stop(self) -> None:
        """Stop beating (idempotent)."""
        self._stopped.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)
