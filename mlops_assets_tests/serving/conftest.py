"""Serving fixtures: a small fitted pipeline (no MLflow) and real ``bentoml serve`` processes.

The unit tests score with a ridge pipeline fitted in a second on generated rows. The integration
tests serve the bento that the session's ``trained_home`` refresh built (its retrain job ends
with ``champion_bento``): one shared server for most tests, and a second one for the shutdown test
that SIGTERMs it. The servers are started by ``mlops_assets_tests.harness.bento``, which stops
each with its whole process tree (BentoML's worker runs in a process group of its own).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest

from mlops_assets.features.cleaning import clean_frame
from mlops_assets.features.pipeline import model_input
from mlops_assets.specs import UseCaseSpec, use_case_specs
from mlops_assets_tests.harness.bento import (
    API_KEY,
    SECOND_API_KEY,
    USE_CASE,
    ServedBento,
    start_bento,
)


@pytest.fixture(scope="session")
def spec() -> UseCaseSpec:
    return use_case_specs()[USE_CASE]


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


@pytest.fixture(scope="session")
def champion_bento_tag(trained_home: Any, spec: UseCaseSpec) -> str:
    """The bento the session's refresh built for its champion."""
    from mlops_assets.environment import Environment
    from mlops_assets.ops.serve import bento_store

    tag = bento_store(Environment.from_env()).current_bento_tag(spec)
    assert tag is not None, "the retrain job did not build the champion's bento"
    return tag


@pytest.fixture(scope="session")
def bento_server(
    champion_bento_tag: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedBento]:
    """The shared server, started by ``mlops serve``: 1000 records a request at most, log
    flushed every second, following the champion alias every second, API keys on (its client
    sends one), a body given 5 s to arrive."""
    served = start_bento(
        champion_bento_tag,
        tmp_path_factory.mktemp("bento-shared"),
        via_cli=True,
        MLOPS_SERVING_MAX_RECORDS="1000",
        MLOPS_PREDICTION_LOG_FLUSH_S="1",
        MLOPS_CHAMPION_POLL_S="1",
        MLOPS_SERVING_API_KEYS=f"{API_KEY},{SECOND_API_KEY}",
        MLOPS_SERVING_BODY_TIMEOUT_S="5",
    )
    try:
        yield served
    finally:
        served.stop()
