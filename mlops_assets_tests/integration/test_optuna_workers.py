"""Optuna worker processes sharing a study: a failing worker, the SQLite fallback.

Two workers sharing the budget with trials that overlap in time, each logging its trials to
MLflow nested under the tuning run, are checked on the shared flow in
``test_production_flow.py``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import pytest

from mlops_assets.features.cleaning import clean_frame
from mlops_assets.generators import get_generator
from mlops_assets.specs import use_case_specs
from mlops_assets.training.tuning import TuningBudget, run_study, worker_count
from mlops_assets_tests.harness.postgres import PostgresServer


def refuse_to_log(trial: Any, *args: Any) -> None:
    """An ``on_trial`` that fails like an unreachable tracking server (importable: pickled)."""
    raise ConnectionError(f"tracking server unreachable while logging trial {trial.number}")


@pytest.fixture(scope="module")
def spec():
    return use_case_specs()["bigmart_sales"]


@pytest.fixture(scope="module")
def train(spec) -> pd.DataFrame:
    raw = get_generator("bigmart_sales").generate(300, dt.date(2025, 1, 1), 3)
    frame, _ = clean_frame(raw, spec)
    frame["_landed_date"] = "2025-01-01"
    return frame[frame[spec.target.name].notna()].reset_index(drop=True)


def test_worker_count() -> None:
    messages: list[str] = []
    assert worker_count(2, "postgresql+psycopg2://u:p@h/optuna", 5, messages.append) == 2
    assert worker_count(4, "postgresql+psycopg2://u:p@h/optuna", 3, messages.append) == 3
    assert worker_count(2, "postgresql+psycopg2://u:p@h/optuna", 1, messages.append) == 1
    assert messages == []
    assert worker_count(2, "sqlite:///optuna.db", 5, messages.append) == 1
    assert worker_count(2, None, 5, messages.append) == 1
    assert "needs a server database" in messages[0] and "SQLite" in messages[0]


@pytest.mark.integration
def test_a_failing_worker_fails_the_search_naming_it(
    postgres_server: PostgresServer, spec, train: pd.DataFrame
) -> None:
    budget = TuningBudget(
        n_trials=3,
        timeout_s=None,
        cv_folds=2,
        seed=1,
        pruner_startup_trials=10,
        early_stopping_rounds=10,
        n_workers=2,
    )
    storage = postgres_server.create_database("optuna_workers")
    with pytest.raises(RuntimeError) as failure:
        run_study(spec, train, budget, storage, "failing", refuse_to_log, lambda m: None)
    message = str(failure.value)
    assert "Optuna worker failed in study failing" in message
    assert "tracking server unreachable" in message and "(pid " in message
