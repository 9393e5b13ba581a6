"""Score a fitted pipeline on labelled rows with the spec's metrics."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlops_assets.features.forecast import rmsse_inputs
from mlops_assets.features.pipeline import model_input
from mlops_assets.metrics import (
    PairedBootstrap,
    classification_metric,
    paired_bootstrap,
    regression_metric,
    rmsse,
)
from mlops_assets.registry.tracking import Tracking
from mlops_assets.specs.model import UseCaseSpec
from mlops_assets.training.families import predict_frame


def spec_metrics(spec: UseCaseSpec) -> list[str]:
    """The primary metric first, then the reported ones (calibration for classifiers)."""
    names = [spec.primary_metric, *spec.reported_metrics]
    if spec.is_classification:
        names += ["brier", "ece"]
    return list(dict.fromkeys(names))


def labelled(frame: pd.DataFrame, spec: UseCaseSpec) -> pd.DataFrame:
    """Rows that carry the target."""
    if spec.target.name not in frame.columns:
        return frame.iloc[0:0]
    return frame[frame[spec.target.name].notna()]


def score_predictions(
    spec: UseCaseSpec,
    y_true: pd.Series,
    y_pred: np.ndarray,
    proba: np.ndarray | None,
    rows: pd.DataFrame | None = None,
) -> dict[str, float]:
    """All of the spec's metrics for predictions already made.

    ``rows`` are the scored rows with their derived features: RMSSE reads the seasonal-naive
    forecast and the series from them, and is left out without them.
    """
    scores: dict[str, float] = {}
    for name in spec_metrics(spec):
        if name == "rmsse":
            if rows is not None:
                scores[name] = rmsse(
                    y_true.to_numpy(dtype=float), y_pred, **rmsse_inputs(rows, spec)
                )
            continue
        if spec.is_classification:
            scores[name] = classification_metric(
                name,
                y_true.astype(str).to_numpy(),
                y_pred,
                proba,
                list(spec.target.classes or []),
                spec.target.positive_class,
            )
        else:
            scores[name] = regression_metric(name, y_true.to_numpy(dtype=float), y_pred)
    return scores


def evaluate(spec: UseCaseSpec, pipeline: Any, frame: pd.DataFrame) -> dict[str, float]:
    """Metrics of ``pipeline`` on the labelled rows of ``frame``."""
    rows = labelled(frame, spec)
    if rows.empty:
        raise ValueError(f"{spec.name}: no labelled rows to evaluate on")
    y_pred, proba = predict_frame(pipeline, model_input(rows, spec), spec)
    return score_predictions(spec, rows[spec.target.name], y_pred, proba, rows)


def bootstrap_improvement(
    spec: UseCaseSpec,
    y_true: pd.Series,
    challenger: tuple[np.ndarray, np.ndarray | None],
    reference: tuple[np.ndarray, np.ndarray | None],
    rows: pd.DataFrame | None = None,
    metric: str | None = None,
    n: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> PairedBootstrap:
    """Paired bootstrap of the challenger's improvement on a reference (the baseline, a champion).

    Both are ``(values_or_labels, proba_or_None)`` as :func:`predict_frame` returns them for the
    same rows; the spec supplies the classes and, for RMSSE, the naive forecast and series of
    ``rows``.

    Raises:
        ValueError: RMSSE without ``rows``, or a metric undefined on these rows.
    """
    metric = metric or spec.primary_metric
    options: dict[str, Any] = {}
    if metric == "rmsse":
        if rows is None:
            raise ValueError(f"{spec.name}: rmsse needs the scored rows (naive forecast, series)")
        options = rmsse_inputs(rows, spec)
    elif spec.is_classification:
        options = {
            "classes": list(spec.target.classes or []),
            "positive_class": spec.target.positive_class,
        }
    truth = y_true.astype(str).to_numpy() if spec.is_classification else y_true.to_numpy(float)
    return paired_bootstrap(
        metric, truth, *challenger, *reference, n=n, seed=seed, level=level, **options
    )


def evaluate_version(
    tracking: Tracking, spec: UseCaseSpec, version: str, frame: pd.DataFrame
) -> dict[str, float]:
    """Metrics of one registered version of the slot's model on the labelled rows of ``frame``."""
    pipeline = tracking.load_pipeline(spec.registered_model_name(), version)
    return evaluate(spec, pipeline, frame)
