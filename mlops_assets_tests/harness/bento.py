"""``bentoml serve`` for tests and benchmarks: a bento served on a free port, ready to answer.

:func:`start_bento` starts it (by ``bentoml serve TAG`` or, as a person would, by ``mlops
serve``) through :func:`~mlops_assets_tests.harness.processes.start_server` and waits for
``/readyz``; :meth:`ServedBento.stop` stops the whole process tree, because BentoML's worker
runs in a process group of its own (stopping the parent's group leaves it serving the port).
The tests (``serving/``, ``use_cases/``) and ``bench/serving.py`` use this one launcher.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from mlops_assets_tests.harness.processes import (
    ServedProcess,
    free_port,
    start_server,
    venv_executable,
)

USE_CASE = "bigmart_sales"
SERVE_TIMEOUT_S = 120
API_KEY = "test-key-0123456789abcdef"
SECOND_API_KEY = "second-key-0123456789abcdef"
"""Keys of the shared test server (``serving/conftest.py``); its client sends the first."""

__all__ = ["API_KEY", "SECOND_API_KEY", "SERVE_TIMEOUT_S", "USE_CASE", "ServedBento", "start_bento"]


@dataclass
class ServedBento(ServedProcess):
    """A running ``bentoml serve`` process."""

    storage: Path
    bento_tag: str
    api_key: str | None = None
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        """A client of the server, sending its API key (if it has keys) on every request."""
        headers = {"x-api-key": self.api_key} if self.api_key else {}
        self.client = httpx.Client(base_url=self.url, timeout=60, headers=headers)

    def predict(self, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
        """POST a JSON-serialisable body, or raw bytes as they are, to ``/predict``."""
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent = {"content-type": "application/json", **(headers or {})}
        return self.client.post("/predict", content=content, headers=sent)

    def stop(self, grace: float = 30.0) -> None:
        """SIGTERM the whole process tree (the worker has its own process group)."""
        self.client.close()
        super().stop(grace)


def start_bento(
    bento_tag: str,
    folder: Path,
    via_cli: bool = False,
    cli_args: tuple[str, ...] = (USE_CASE,),
    *,
    timeout: float = SERVE_TIMEOUT_S,
    **env: str,
) -> ServedBento:
    """A bento served on a free port, its log in ``folder``, ready to answer.

    With ``via_cli`` the server is started as a person would, by ``mlops serve`` with
    ``cli_args`` (the use case, then options; it execs ``bentoml serve`` on the champion's
    bento), else by ``bentoml serve TAG``. ``env`` is added to the served environment; its stores
    (``MLOPS_STORAGE_URI``, the prediction log's) are ``folder/storage`` unless ``env`` sets one.

    Raises:
        ServerStartError: If it exits or does not answer ``/readyz`` within ``timeout`` seconds
            (it is stopped then); the message has the tail of its log.
    """
    from mlops_assets.environment import Environment
    from mlops_assets.ops.serve import serve_command, serve_environment

    folder.mkdir(parents=True, exist_ok=True)
    storage = folder / "storage"
    port = free_port()
    log_path = folder / "serve.log"
    served_env = serve_environment(Environment.from_env())
    environment = {
        **served_env,
        "MLOPS_STORAGE_URI": str(storage),
        "MLOPS_PREDICTION_LOG_SPOOL": str(folder / "spool"),
        **env,
    }
    command = serve_command(bento_tag, port)
    if via_cli:
        command = [str(venv_executable("mlops")), "serve", *cli_args, "--port", str(port)]
    served = start_server(
        "mlops serve" if via_cli else "bentoml serve",
        command,
        port=port,
        ready_path="/readyz",
        log_path=log_path,
        env=environment,
        cwd=folder,
        timeout=timeout,
    )
    keys = [key.strip() for key in env.get("MLOPS_SERVING_API_KEYS", "").split(",")]
    return ServedBento(
        served.name,
        served.url,
        served.process,
        served.log_path,
        storage=storage,
        bento_tag=bento_tag,
        api_key=keys[0] or None,
    )
