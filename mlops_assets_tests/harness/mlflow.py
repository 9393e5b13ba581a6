"""The MLflow tracking server for tests: ``mlflow server`` on a free port.

:class:`MLflowServer` has a SQL backend store and proxies artifacts to an S3 destination;
:meth:`MLflowServer.for_servers` wires it to a running ``PostgresServer`` (``harness.postgres``)
and ``SeaweedS3`` (``harness.s3``). The server starts in a process group of its own and is
stopped with it (it leaves children behind if only its PID is killed).
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from mlops_assets_tests.harness.processes import (
    LOCALHOST,
    ServerError,
    ServerStartError,
    _Server,
    _tail,
    _wait_until,
    free_port,
    stop_process_tree,
    venv_executable,
)

if TYPE_CHECKING:
    from mlops_assets_tests.harness.postgres import PostgresServer
    from mlops_assets_tests.harness.s3 import SeaweedS3

__all__ = ["MLflowServer"]


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
