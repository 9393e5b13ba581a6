"""The Dagster UI as ``make dev`` starts it (``dg dev``: webserver, daemon, code server), and its
GraphQL API, the one the UI draws from.

:func:`start_dagster_ui` runs ``dg dev`` from the project's root on a free port with the
environment given (its ``DAGSTER_HOME`` and ``MLOPS_HOME``), waits until the code location is
loaded, and returns a :class:`DagsterUI` to query (:meth:`DagsterUI.graphql`) and stop (its
whole process tree, the way Ctrl-C stops ``make dev``). The webserver test and
``docs/screenshots.py`` use it.
"""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_assets_tests.harness.processes import (
    LOCALHOST,
    ServedProcess,
    ServerStartError,
    free_port,
    start_server,
    stop_process_tree,
    venv_executable,
)

ROOT = Path(__file__).resolve().parents[2]
LOCATION = "mlops_assets"
REPOSITORY = "__repository__"
REPOSITORY_SELECTOR = {"repositoryName": REPOSITORY, "repositoryLocationName": LOCATION}
LOG_LEVEL = "warning"  # as `make dev` (DEV_LOG_LEVEL)

__all__ = ["REPOSITORY_SELECTOR", "DagsterUI", "GraphQLError", "start_dagster_ui"]


class GraphQLError(RuntimeError):
    """The GraphQL API answered with errors."""


@dataclass
class DagsterUI:
    """A running ``dg dev``: its URL, its log, and its GraphQL API."""

    served: ServedProcess

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return self.served.url

    @property
    def log_path(self) -> Path:
        """Everything ``dg dev`` and its processes printed."""
        return self.served.log_path

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The ``data`` of a GraphQL query.

        Raises:
            GraphQLError: The answer has errors.
        """
        body = json.dumps({"query": query, "variables": dict(variables or {})}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
        if answer.get("errors"):
            raise GraphQLError(json.dumps(answer["errors"])[:3000])
        return answer["data"]

    def wait_for_location(self, timeout: float = 180.0) -> None:
        """Wait until the code location is loaded (the webserver answers before it is)."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            data = self.graphql(
                "{ workspaceOrError { ... on Workspace { locationEntries { name "
                "locationOrLoadError { __typename ... on PythonError { message } } } } } }"
            )
            entries = data["workspaceOrError"].get("locationEntries", [])
            state = {e["name"]: e["locationOrLoadError"] for e in entries}
            found = state.get(LOCATION) or {}
            if found.get("__typename") == "RepositoryLocation":
                return
            if found.get("__typename") == "PythonError":
                raise ServerStartError(f"{LOCATION} failed to load: {found.get('message')}")
            last = str(state)
            time.sleep(1.0)
        raise ServerStartError(f"{LOCATION} not loaded after {timeout:.0f} s: {last}")

    def stop(self) -> None:
        """Stop it as Ctrl-C stops ``make dev`` (then whatever is left, for good)."""
        stop_process_tree(self.served.process, sig=signal.SIGINT, grace=20.0)


def start_dagster_ui(
    env: Mapping[str, str], log_path: Path, cwd: Path = ROOT, timeout: float = 180.0
) -> DagsterUI:
    """``dg dev`` on a free port, from ``cwd``, loaded and ready to query."""
    port = free_port()
    command = [
        str(venv_executable("dg")),
        "dev",
        "-h",
        LOCALHOST,
        "-p",
        str(port),
        "--log-level",
        LOG_LEVEL,
    ]
    served = start_server(
        "dg dev",
        command,
        port=port,
        ready_path="/server_info",
        log_path=log_path,
        env=env,
        cwd=cwd,
        timeout=timeout,
        interval=0.5,
    )
    ui = DagsterUI(served)
    try:
        ui.wait_for_location(timeout)
    except BaseException:
        ui.stop()
        raise
    return ui
