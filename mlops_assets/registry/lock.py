"""One retraining run per use case at a time, however the run was started.

The daemon (a schedule or sensor), the UI and the ``mlops`` CLI (``execute_in_process``) all run
the same assets with the same resources, so the lock is a resource: the first retrain step of a
run acquires the use case's lock and the run holds it until it ends
(``teardown_after_execution``). With the retrain job's in-process executor that is the whole
run; where steps run in processes of their own (an ad-hoc materialisation from the UI with the
multiprocess executor), each retrain step holds it for its own duration. A second run fails
fast, before it writes anything, with a message naming the run that holds the lock.

Two backends behind one interface:

* **PostgreSQL advisory lock** (``pg_try_advisory_lock``) on a connection kept open for the run,
  used whenever a PostgreSQL URL is configured (``Environment.lock_url``): it
  excludes every process of a deployment, on any machine, and is released by PostgreSQL if the
  holder dies. The holder is named through the connection's ``application_name``.
* **File lock** (``flock``) on ``<MLOPS_HOME>/locks/retrain-<use_case>.lock`` otherwise: it
  excludes processes sharing that folder (the embedded default: one machine). The kernel
  releases it if the holder dies; the file records who holds it.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import socket
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

LOCK_NAMESPACE = "mlops-retrain"
APPLICATION_NAME_LIMIT = 63  # PostgreSQL truncates application_name beyond NAMEDATALEN - 1


class RetrainLockError(RuntimeError):
    """The use case's retrain lock is held by another run, or was lost; nothing was changed.

    The Dagster resource turns it into a failure that refuses retries: a retry policy on the
    step (the storage retries of the splits) must not turn "another run is retraining" into
    waiting for it and retraining again afterwards.
    """


def lock_key(use_case: str) -> int:
    """The 63-bit advisory-lock key of a use case (stable across processes and machines)."""
    digest = hashlib.sha256(f"{LOCK_NAMESPACE}:{use_case}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & 0x7FFF_FFFF_FFFF_FFFF


def describe_holder(holder: dict[str, Any]) -> str:
    """A holder record as text: run, process, host and since when."""
    run = holder.get("run_id")
    who = f"Dagster run {run}" if run else "a process outside a Dagster run"
    where = ", ".join(
        part
        for part in (
            f"pid {holder['pid']}" if holder.get("pid") else "",
            f"host {holder['host']}" if holder.get("host") else "",
            f"since {holder['since']}" if holder.get("since") else "",
        )
        if part
    )
    return f"{who} ({where})" if where else who


class HeldLock(ABC):
    """A lock this process holds until :meth:`release`."""

    @abstractmethod
    def still_held(self) -> bool:
        """Whether the lock is still held (a dropped database connection loses it)."""

    @abstractmethod
    def release(self) -> None:
        """Give the lock up (idempotent)."""


class FileLock(HeldLock):
    """``flock`` on a file: held per open file, so two runs in one process exclude each other."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, path: Path, use_case: str, holder: dict[str, Any]) -> FileLock:
        """Take the lock without waiting, or raise naming the holder."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                recorded = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
            except (OSError, ValueError):
                recorded = {}
            os.close(fd)
            raise RetrainLockError(
                f"retrain of {use_case} is already running: the lock {path} is held by "
                f"{describe_holder(recorded) if recorded else 'a run that is just starting'}; "
                "this run changed nothing (start it again once that run has finished)"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        return cls(path, fd)

    def still_held(self) -> bool:
        """A file lock is held as long as the file stays open."""
        return self._fd is not None

    def release(self) -> None:
        """Clear the holder record and unlock."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


class PostgresAdvisoryLock(HeldLock):
    """A session-level ``pg_advisory_lock`` on a connection kept open while held."""

    def __init__(self, engine: Any, connection: Any, key: int) -> None:
        self._engine = engine
        self._connection: Any = connection
        self.key = key

    @classmethod
    def acquire(
        cls, url: str, use_case: str, holder: dict[str, Any], connect_timeout: int = 10
    ) -> PostgresAdvisoryLock:
        """Take the lock without waiting, or raise naming the holder."""
        import sqlalchemy as sa
        from sqlalchemy.pool import NullPool

        key = lock_key(use_case)
        application_name = f"{LOCK_NAMESPACE} {holder.get('run_id') or 'manual'} pid {os.getpid()}"
        engine = sa.create_engine(
            url,
            poolclass=NullPool,
            connect_args={
                "application_name": application_name[:APPLICATION_NAME_LIMIT],
                "connect_timeout": connect_timeout,
            },
        )
        connection = None
        try:
            connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            acquired = connection.execute(
                sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": key}
            ).scalar_one()
            if not acquired:
                holders = cls._holders(connection, key)
                raise RetrainLockError(
                    f"retrain of {use_case} is already running: its PostgreSQL advisory lock "
                    f"({connection.engine.url.render_as_string(hide_password=True)}, key {key}) "
                    f"is held by {holders or 'another session'}; this run changed nothing "
                    "(start it again once that run has finished)"
                )
        except BaseException:
            if connection is not None:
                connection.close()
            engine.dispose()
            raise
        return cls(engine, connection, key)

    @staticmethod
    def _holders(connection: Any, key: int) -> str:
        """The sessions holding ``key``: their application name (run and pid) and address."""
        import sqlalchemy as sa

        rows = connection.execute(
            sa.text(
                "SELECT a.application_name, a.client_addr, a.backend_start "
                "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND l.classid::bigint = :high AND l.objid::bigint = :low AND l.objsubid = 1"
            ),
            {"high": key >> 32, "low": key & 0xFFFF_FFFF},
        ).all()
        return "; ".join(
            f"{name or 'a session'} (client {addr or 'local'}, connected "
            f"{start.isoformat(timespec='seconds')})"
            for name, addr, start in rows
        )

    def still_held(self) -> bool:
        """Whether the connection is alive and still holds the lock."""
        import sqlalchemy as sa

        if self._connection is None:
            return False
        try:
            return bool(
                self._connection.execute(
                    sa.text(
                        "SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() "
                        "AND locktype = 'advisory' AND granted "
                        "AND classid::bigint = :high AND objid::bigint = :low AND objsubid = 1"
                    ),
                    {"high": self.key >> 32, "low": self.key & 0xFFFF_FFFF},
                ).scalar_one()
            )
        except Exception:  # a dropped connection: the server released the lock with it
            return False

    def release(self) -> None:
        """Unlock and close the connection (closing alone would release it too)."""
        import sqlalchemy as sa

        if self._connection is None:
            return
        connection, self._connection = self._connection, None
        try:
            connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
        except Exception:  # the connection is gone, and the lock with it
            pass
        finally:
            try:
                connection.close()
            finally:
                self._engine.dispose()


class RetrainLocks:
    """The retrain locks one run holds: acquired by its first retrain step, held until it ends.

    Args:
        url: PostgreSQL URL for advisory locks (every process of the deployment must use the
            same database); ``None``: file locks under ``lock_dir``.
        lock_dir: Folder of the file locks.
        run_id: The Dagster run holding the locks (named in the message a second run gets).
    """

    def __init__(self, url: str | None, lock_dir: Path, run_id: str | None = None) -> None:
        self.url = url
        self.lock_dir = Path(lock_dir)
        self.run_id = run_id
        self._held: dict[str, HeldLock] = {}

    def backend(self) -> str:
        """Which backend is in force: ``postgres`` or ``file``."""
        return "postgres" if self.url else "file"

    def _path(self, use_case: str) -> Path:
        return self.lock_dir.expanduser() / f"retrain-{use_case}.lock"

    def _holder(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }

    def acquire(self, use_case: str) -> None:
        """Hold ``use_case``'s lock until released; a no-op if held already.

        Raises:
            RetrainLockError: If another run holds it, or this one lost it (its database
                connection dropped), naming what holds it.
        """
        held = self._held.get(use_case)
        if held is not None:
            if held.still_held():
                return
            held.release()
            del self._held[use_case]
            raise RetrainLockError(
                f"retrain of {use_case} lost its lock (the lock database connection dropped); "
                "stopping before another run can overlap with this one"
            )
        if self.url:
            self._held[use_case] = PostgresAdvisoryLock.acquire(self.url, use_case, self._holder())
        else:
            self._held[use_case] = FileLock.acquire(self._path(use_case), use_case, self._holder())

    def release(self, use_case: str) -> None:
        """Release one use case's lock if held."""
        held = self._held.pop(use_case, None)
        if held is not None:
            held.release()

    def release_all(self) -> None:
        """Release every lock held."""
        for use_case in list(self._held):
            self.release(use_case)
