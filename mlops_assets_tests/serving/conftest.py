"""Serving fixtures: a small fitted pipeline (no MLflow) and real ``bentoml serve`` processes.

The unit tests score with a ridge pipeline fitted in a second on generated rows. The integration
tests serve the bento that the session's ``trained_home`` refresh built (its retrain job ends
with ``champion_bento``): one shared server for most tests, and a second one for the shutdown test
that SIGTERMs it. Every server is stopped with its whole process tree (BentoML's worker runs in a
process group of its own).
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from mlops_assets.features.cleaning import clean_frame
from mlops_assets.features.pipeline import model_input
from mlops_assets.specs import UseCaseSpec, load_specs
from mlops_assets_tests.servers import (
    ServerStartError,
    free_port,
    stop_process_tree,
    venv_executable,
)

USE_CASE = "bigmart_sales"
SERVE_TIMEOUT_S = 120


@pytest.fixture(scope="session")
def spec() -> UseCaseSpec:
    return load_specs()[USE_CASE]


@pytest.fixture(scope="session")
def landed_rows(spec: UseCaseSpec) -> pd.DataFrame:
    """Generated rows as they land: dirty spellings, zero visibilities, missing weights."""
    from mlops_assets.generators import get_generator

    return get_generator(USE_CASE).generate(600, dt.date(2025, 3, 1), seed=11)


@pytest.fixture(scope="session")
def fitted_pipeline(spec: UseCaseSpec, landed_rows: pd.DataFrame) -> Any:
    """A ridge pipeline (group imputers included) fitted on the cleaned rows."""
    from mlops_assets.training.families import build_pipeline

    cleaned, _ = clean_frame(landed_rows, spec)
    pipeline = build_pipeline(spec, "ridge", {"alpha": 1.0})
    pipeline.fit(model_input(cleaned, spec), cleaned[spec.target.name])
    return pipeline


def record(**changes: Any) -> dict[str, Any]:
    """One valid raw record, with ``changes`` applied (a value of ``...`` removes the field)."""
    base: dict[str, Any] = {
        "Item_Identifier": "FDA15",
        "Item_Weight": 9.3,
        "Item_Fat_Content": "LF",
        "Item_Visibility": 0,
        "Item_Type": "Dairy",
        "Item_MRP": 249.8,
        "Outlet_Identifier": "OUT049",
        "Outlet_Establishment_Year": 1999,
        "Outlet_Size": "Medium",
        "Outlet_Location_Type": "Tier 1",
        "Outlet_Type": "Supermarket Type1",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not ...}


def landed_records(frame: pd.DataFrame, spec: UseCaseSpec) -> list[dict[str, Any]]:
    """Rows as a client holding the landed file would send them (CSV text, empty = null)."""
    from mlops_assets.ingest.readers import read_csv_text

    text = read_csv_text(frame.to_csv(index=False))
    columns = [c.name for c in spec.input_columns]
    return [
        {k: (None if pd.isna(v) else v) for k, v in row.items()}
        for row in text[columns].to_dict("records")
    ]


# ---------------------------------------------------------------- real servers


@dataclass
class ServedBento:
    """A running ``bentoml serve`` process."""

    url: str
    process: subprocess.Popen[bytes]
    storage: Path
    log_path: Path
    bento_tag: str
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.url, timeout=60)

    def predict(self, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
        """POST a JSON-serialisable body, or raw bytes as they are, to ``/predict``."""
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent = {"content-type": "application/json", **(headers or {})}
        return self.client.post("/predict", content=content, headers=sent)

    def stop(self) -> None:
        """SIGTERM the whole process tree (the worker has its own process group)."""
        self.client.close()
        stop_process_tree(self.process, grace=30)


def start_bento(
    bento_tag: str,
    folder: Path,
    via_cli: bool = False,
    cli_args: tuple[str, ...] = (USE_CASE,),
    **env: str,
) -> ServedBento:
    """A bento served on a free port, its log in ``folder``, ready to answer.

    With ``via_cli`` the server is started as a person would, by ``mlops serve`` with
    ``cli_args`` (the use case, then options; it execs ``bentoml serve`` on the champion's
    bento), else by ``bentoml serve TAG``.
    """
    from mlops_assets.serving.serve import serve_command, serve_environment

    folder.mkdir(parents=True, exist_ok=True)
    storage = folder / "storage"
    port = free_port()
    log_path = folder / "serve.log"
    environment = {**serve_environment(), "MLOPS_STORAGE_URI": str(storage), **env}
    command = serve_command(bento_tag, port)
    if via_cli:
        command = [str(venv_executable("mlops")), "serve", *cli_args, "--port", str(port)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=folder,
            start_new_session=True,
        )
    served = ServedBento(f"http://127.0.0.1:{port}", process, storage, log_path, bento_tag)
    try:
        _wait_ready(served)
    except BaseException:
        served.stop()
        raise
    return served


def _wait_ready(served: ServedBento) -> None:
    deadline = time.monotonic() + SERVE_TIMEOUT_S
    while time.monotonic() < deadline:
        if served.process.poll() is not None:
            raise ServerStartError(f"bentoml serve exited:\n{served.log_path.read_text()[-4000:]}")
        try:
            if served.client.get("/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise ServerStartError(f"bentoml serve not ready:\n{served.log_path.read_text()[-4000:]}")


@pytest.fixture(scope="session")
def champion_bento_tag(trained_home: Any, spec: UseCaseSpec) -> str:
    """The bento the session's refresh built for its champion."""
    from mlops_assets.registry.mlflow_resource import MlflowTracking
    from mlops_assets.serving.bento import current_bento_tag

    tag = current_bento_tag(spec, MlflowTracking())
    assert tag is not None, "the retrain job did not build the champion's bento"
    return tag


@pytest.fixture(scope="session")
def bento_server(
    champion_bento_tag: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedBento]:
    """The shared server, started by ``mlops serve``: 1000 records a request at most, log
    flushed every second, following the champion alias every second."""
    served = start_bento(
        champion_bento_tag,
        tmp_path_factory.mktemp("bento-shared"),
        via_cli=True,
        MLOPS_SERVING_MAX_RECORDS="1000",
        MLOPS_PREDICTION_LOG_FLUSH_S="1",
        MLOPS_CHAMPION_POLL_S="1",
    )
    try:
        yield served
    finally:
        served.stop()
