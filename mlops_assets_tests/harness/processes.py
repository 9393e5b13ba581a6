"""The shared pieces of the test servers: ports, executables, process trees, readiness, cleanup.

* :func:`free_port`, :func:`venv_executable` and :func:`stop_process_tree` (a process started in
  its own session, its group and every descendant: some servers put workers in a group of their
  own), plus the log tail and the wait-until loop the server classes use.
* ``_Server``: the lifecycle the server classes share (context manager, ``close()``, cleanup at
  interpreter exit, so an interrupted test session does not leave processes behind).
* :func:`start_server` and :class:`ServedProcess`: the generic launcher, a server command on a
  free port in its own session, ready once an HTTP URL answers 200, stopped with its whole tree.
  ``bentoml serve`` (:mod:`mlops_assets_tests.harness.bento`) and the benchmark's servers
  (``bench/serving.py``) are started through it.

The module imports nothing heavy at import time.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import psutil

LOCALHOST = "127.0.0.1"
LOG_TAIL_CHARS = 6000

__all__ = [
    "LOCALHOST",
    "ServedProcess",
    "ServerError",
    "ServerStartError",
    "free_port",
    "http_ok",
    "start_server",
    "stop_process_tree",
    "venv_executable",
]


class ServerError(RuntimeError):
    """A test server could not be set up, started or stopped."""


class ServerStartError(ServerError):
    """A test server did not become ready; the message carries the tail of its log."""


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------

_handed_out_ports: set[int] = set()
_port_lock = threading.Lock()


def _can_bind(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = LOCALHOST, *, offsets: Iterable[int] = ()) -> int:
    """A TCP port that is free now, never handed out before by this process.

    Args:
        host: Interface the port must be free on.
        offsets: Extra offsets that must be free too (``port + offset``), e.g. ``(10000,)`` for a
            server that also listens on its port + 10000. Those ports are reserved as well.

    Returns:
        The port number. Another process may still take it before the caller binds it: servers
        that fail to start for that reason are retried with new ports by the classes here.

    Raises:
        ServerError: If no such port was found.
    """
    extra = tuple(offsets)
    with _port_lock:
        for _ in range(500):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((host, 0))
                port = int(sock.getsockname()[1])
            wanted = [port, *(port + offset for offset in extra)]
            if any(p in _handed_out_ports or not 1024 <= p <= 65535 for p in wanted):
                continue
            if all(_can_bind(host, p) for p in wanted[1:]):
                _handed_out_ports.update(wanted)
                return port
    raise ServerError(f"no free TCP port on {host} (with offsets {extra})")


def venv_executable(name: str) -> Path:
    """An executable of the running Python environment (its ``bin/``), else from ``PATH``.

    Raises:
        ServerError: If the executable is not found.
    """
    candidates = [Path(sys.executable).parent / name, Path(sys.prefix) / "bin" / name]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which(name)
    if found:
        return Path(found)
    raise ServerError(f"executable {name!r} not found in {candidates[0].parent} or on PATH")


def _tail(path: Path | None, chars: int = LOG_TAIL_CHARS) -> str:
    if path is None or not path.exists():
        return "(no log)"
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - chars))
        text = handle.read().decode("utf-8", errors="replace")
    return text if size <= chars else f"...{text}"


def _gone(proc: psutil.Process) -> bool:
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_gone(procs: Sequence[psutil.Process], timeout: float) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    alive = [proc for proc in procs if not _gone(proc)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [proc for proc in alive if not _gone(proc)]
    return alive


def stop_process_tree(
    popen: subprocess.Popen[Any], *, grace: float = 15.0, sig: int = signal.SIGTERM
) -> None:
    """Stop a process started with ``start_new_session=True``, its group and all descendants.

    Descendants are collected first (they are lost once the parent exits), then the whole group
    and every descendant (some servers put workers in a group of their own) get ``sig``; whatever
    is still alive after ``grace`` seconds is killed.
    """
    if popen.poll() is not None:
        return
    procs: list[psutil.Process] = []
    with contextlib.suppress(psutil.NoSuchProcess):
        parent = psutil.Process(popen.pid)
        procs = [parent, *parent.children(recursive=True)]

    def signal_all(signum: int, targets: Sequence[psutil.Process]) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(popen.pid, signum)
        for proc in targets:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                proc.send_signal(signum)

    signal_all(sig, procs)
    alive = _wait_gone(procs, grace)
    if alive or popen.poll() is None:
        signal_all(signal.SIGKILL, alive)
        _wait_gone(alive, 5.0)
    with contextlib.suppress(subprocess.TimeoutExpired):
        popen.wait(timeout=5.0)


def _wait_until(
    ready: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    log_path: Path | None,
    alive: Callable[[], bool] | None = None,
    interval: float = 0.2,
) -> float:
    """Poll ``ready`` until it returns True; the seconds it took.

    Raises:
        ServerStartError: On timeout or when ``alive`` says the process has exited; the message
            carries the tail of ``log_path``.
    """
    started = time.monotonic()
    last_error = ""
    while True:
        try:
            if ready():
                return time.monotonic() - started
        except Exception as error:  # readiness probes raise whatever their client raises
            last_error = f"{type(error).__name__}: {error}"
        if alive is not None and not alive():
            raise ServerStartError(
                f"{what} exited during startup (last probe error: {last_error or 'none'}); "
                f"log {log_path}:\n{_tail(log_path)}"
            )
        if time.monotonic() - started > timeout:
            raise ServerStartError(
                f"{what} not ready after {timeout:.0f} s (last probe error: "
                f"{last_error or 'none'}); log {log_path}:\n{_tail(log_path)}"
            )
        time.sleep(interval)


class _Server:
    """Shared lifecycle: context manager and cleanup at interpreter exit."""

    name = "server"

    def __init__(self, base_dir: str | Path | None, prefix: str) -> None:
        self._owns_base_dir = base_dir is None
        if base_dir is None:
            self.base_dir = Path(tempfile.mkdtemp(prefix=prefix))
        else:
            self.base_dir = Path(base_dir).resolve()
            self.base_dir.mkdir(parents=True, exist_ok=True)
        self._closed = False
        self.last_start_seconds: float | None = None
        atexit.register(self.close)  # even if a test session is interrupted

    def start(self) -> Self:  # pragma: no cover - overridden
        """Start the server (no-op when running) and wait until it is ready."""
        raise NotImplementedError

    def stop(self) -> None:  # pragma: no cover - overridden
        """Stop the server, keeping its data (``start()`` may be called again)."""
        raise NotImplementedError

    def is_running(self) -> bool:  # pragma: no cover - overridden
        """Whether the server process is alive."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop the server and remove the temporary directory this object created."""
        if self._closed:
            return
        try:
            self.stop()
        finally:
            self._closed = True
            atexit.unregister(self.close)
            if self._owns_base_dir:
                shutil.rmtree(self.base_dir, ignore_errors=True)

    def _check_open(self) -> None:
        if self._closed:
            raise ServerError(f"{self.name} at {self.base_dir} was closed; create a new one")

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# --------------------------------------------------------------------------------------------
# A server command on a local port
# --------------------------------------------------------------------------------------------


@dataclass
class ServedProcess:
    """A server command running in a session of its own, stopped with its whole process tree.

    Attributes:
        name: What it is, for messages and reports.
        url: Its base URL, ``http://127.0.0.1:<port>``.
        process: The started command.
        log_path: Its output (stdout and stderr).
    """

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def is_running(self) -> bool:
        """Whether the started command is alive."""
        return self.process.poll() is None

    def stop(self, grace: float = 30.0) -> None:
        """SIGTERM the whole process tree; whatever is alive after ``grace`` seconds is killed."""
        stop_process_tree(self.process, grace=grace)


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """Whether ``GET url`` answers 200 now (errors propagate, for :func:`_wait_until`)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status == 200


def start_server(
    name: str,
    command: Sequence[str],
    *,
    port: int,
    ready_path: str,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120.0,
    interval: float = 0.3,
    host: str = LOCALHOST,
) -> ServedProcess:
    """Start ``command`` (which serves on ``port``) and wait until ``ready_path`` answers 200.

    The command runs in a new session with its output in ``log_path``; if it exits or is not
    ready within ``timeout`` seconds (or waiting is interrupted), its whole tree is stopped.

    Args:
        name: What it is, for messages.
        command: The command line; it must listen on ``host:port``.
        port: Its port (e.g. from :func:`free_port`).
        ready_path: Path probed with ``GET`` until it answers 200, e.g. ``/readyz``.
        log_path: File for its stdout and stderr (overwritten).
        env: Its environment; this process's by default.
        cwd: Its working directory.
        timeout: Seconds to wait for readiness.
        interval: Seconds between probes.
        host: The address it listens on.

    Raises:
        ServerStartError: If it exits or is not ready in time; the message has the log's tail.
    """
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            list(command),
            env=None if env is None else dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
        )
    served = ServedProcess(name, f"http://{host}:{port}", process, log_path)
    try:
        _wait_until(
            lambda: http_ok(served.url + ready_path),
            timeout=timeout,
            what=f"{name} at {served.url}",
            log_path=log_path,
            alive=served.is_running,
            interval=interval,
        )
    except BaseException:
        served.stop()
        raise
    return served
