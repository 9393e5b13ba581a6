"""An isolated ``MLOPS_HOME``: every location the code location reads pointed under one folder.

The variables are those :meth:`mlops_assets.environment.Environment.from_env` reads for a
location (each defaults to a place under the home when unset).

:func:`point_at_home` is what the ``mlops_home`` and ``trained_home`` fixtures use, and what
tests that train in a home of their own (``use_cases/``, ``serving/test_segment_service.py``,
``integration/stack.py``) call with their own ``pytest.MonkeyPatch``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ISOLATED_VARIABLES = [
    "MLOPS_STORAGE_URI",
    "MLOPS_LANDING_URI",
    "MLFLOW_TRACKING_URI",
    "MLOPS_OPTUNA_STORAGE",
    "MLOPS_MLFLOW_ARTIFACTS_URI",
    "MLOPS_MODEL_CACHE",
    "MLOPS_LOCK_URL",
    "MLOPS_PREDICTION_LOG_DATABASE",
    "MLOPS_PREDICTION_LOG_SPOOL",
    "MLOPS_SPECS_DIRS",
    "BENTOML_HOME",
    "DAGSTER_HOME",
]

__all__ = ["ISOLATED_VARIABLES", "point_at_home"]


def point_at_home(patch: pytest.MonkeyPatch, home: Path) -> None:
    """Make every location default to a folder under ``home``."""
    for variable in ISOLATED_VARIABLES:
        patch.delenv(variable, raising=False)
    patch.setenv("MLOPS_HOME", str(home))
    patch.setenv("DAGSTER_HOME", str(home / "dagster"))
    patch.setenv("BENTOML_DO_NOT_TRACK", "true")
    patch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    patch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
