"""Logging a tuned pipeline to MLflow and registering it as the slot's challenger.

Every Optuna trial is a nested MLflow run under the tuning run (:func:`log_trial`); the best
pipeline, refit on all training rows, is logged with its signature and input example and
registered as a new version carrying the ``challenger`` alias (:func:`log_and_register`).
"""

from __future__ import annotations

from importlib import metadata as importlib_metadata
from typing import Any

import pandas as pd

from mlops_assets import names
from mlops_assets.features.pipeline import model_input
from mlops_assets.ingest.days import day_of_rows
from mlops_assets.registry.tracking import Tracking
from mlops_assets.specs.model import UseCaseSpec
from mlops_assets.training.families import predict_frame
from mlops_assets.training.tuning import trial_parent_run_id

PINNED_PACKAGES = ("scikit-learn", "catboost", "pandas", "numpy", "mlops-assets")


def pip_requirements() -> list[str]:
    """Pinned requirements of a logged pipeline (skips MLflow's slow inference)."""
    pins = []
    for name in PINNED_PACKAGES:
        try:
            pins.append(f"{name}=={importlib_metadata.version(name)}")
        except importlib_metadata.PackageNotFoundError:
            continue
    return pins


def log_trial(
    trial: Any, family: str, params: dict[str, Any], metrics: dict[str, float], state: str
) -> None:
    """Record one Optuna trial as a nested MLflow run (in a worker: under the tuning run)."""
    import mlflow

    with mlflow.start_run(
        run_name=f"trial-{trial.number}", nested=True, parent_run_id=trial_parent_run_id()
    ):
        mlflow.set_tags(
            {"optuna.trial": str(trial.number), "optuna.state": state, "family": family}
        )
        Tracking.log_params({"family": family, **params})
        if metrics:
            mlflow.log_metrics(metrics)


def log_and_register(
    spec: UseCaseSpec, tracking: Tracking, pipeline: Any, train: pd.DataFrame
) -> str:
    """Log the refit pipeline with signature and input example; register it as challenger."""
    import mlflow.sklearn
    from mlflow.models import infer_signature

    example = model_input(train.head(5), spec)
    prediction, _ = predict_frame(pipeline, example, spec)
    info = mlflow.sklearn.log_model(
        pipeline,
        name="model",
        signature=infer_signature(example, prediction),
        input_example=example,
        pip_requirements=pip_requirements(),
        serialization_format="cloudpickle",
    )
    version = tracking.register_version(spec.registered_model_name(), info)
    tracking.client().set_registered_model_alias(
        spec.registered_model_name(), names.CHALLENGER, version
    )
    return version


def training_partitions(spec: UseCaseSpec, train: pd.DataFrame) -> list[str]:
    """The first and last partition a model learns from (the MLflow tag the ledger reads).

    Only the two ends are kept: an event-date window is thousands of (zero-filled) days, and
    the window is what the ledger records anyway.
    """
    days = day_of_rows(train, spec).dropna()
    return [str(days.min()), str(days.max())] if len(days) else []
