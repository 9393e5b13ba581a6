"""Metrics by name, with the direction that makes a score better.

The primary metric of a spec drives both tuning (the Optuna direction) and promotion (the
margin test), so both read it from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

HIGHER_IS_BETTER = {"accuracy", "f1", "macro_f1", "roc_auc", "r2"}


def direction(metric: str) -> str:
    """Optuna direction for a metric: ``maximize`` or ``minimize``."""
    return "maximize" if metric in HIGHER_IS_BETTER else "minimize"


def improvement(metric: str, challenger: float, incumbent: float) -> float:
    """Relative improvement of the challenger over the incumbent (positive = better)."""
    if incumbent == 0:
        return 0.0 if challenger == incumbent else float("inf")
    sign = 1.0 if metric in HIGHER_IS_BETTER else -1.0
    return sign * (challenger - incumbent) / abs(incumbent)


def regression_metric(name: str, y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """One regression metric."""
    from sklearn import metrics as skm

    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    if name == "rmse":
        return float(np.sqrt(np.mean((y_true - y_pred) ** 2)))
    if name == "mae":
        return float(np.mean(np.abs(y_true - y_pred)))
    if name == "wmape":
        total = np.sum(np.abs(y_true))
        return float(np.sum(np.abs(y_true - y_pred)) / total) if total else float("nan")
    if name == "r2":
        return float(skm.r2_score(y_true, y_pred))
    if name == "tweedie_deviance":
        return float(skm.mean_tweedie_deviance(y_true, np.clip(y_pred, 1e-9, None), power=1.5))
    raise ValueError(f"unknown regression metric {name!r}")


def rmsse(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    y_naive: np.ndarray,
    groups: np.ndarray | None = None,
) -> float:
    """Root mean squared scaled error against a naive forecast of the same rows, per series.

    For each series, ``sqrt(MSE(model) / MSE(naive))`` over its rows, where ``y_naive`` is the
    seasonal-naive forecast (the target one season earlier, e.g. ``lag_7``); then the mean over
    series. Below 1 the model beats the naive forecast. Scaling per series makes a slow item's
    errors count as much as a best seller's. Rows without a naive value are left out, and so
    are series whose naive forecast is perfect (their ratio is undefined).

    Raises:
        ValueError: No series has a defined ratio.
    """
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    y_naive = np.asarray(y_naive, dtype=float)
    keys = np.zeros(len(y_true), dtype=int) if groups is None else np.asarray(groups)
    known = ~np.isnan(y_naive) & ~np.isnan(y_true)
    ratios = []
    for key in np.unique(keys[known]):
        rows = known & (keys == key)
        scale = np.mean((y_true[rows] - y_naive[rows]) ** 2)
        if scale > 0:
            ratios.append(np.sqrt(np.mean((y_true[rows] - y_pred[rows]) ** 2) / scale))
    if not ratios:
        raise ValueError("rmsse: no series with a non-zero seasonal-naive error")
    return float(np.mean(ratios))


def classification_metric(
    name: str,
    y_true: Sequence[Any],
    y_pred: Sequence[Any],
    proba: np.ndarray,
    classes: list[str],
    positive_class: str | None = None,
) -> float:
    """One classification metric; ``proba`` has one column per class in ``classes`` order."""
    from sklearn import metrics as skm

    y_true = np.asarray(y_true, dtype=object)
    if name == "accuracy":
        return float(skm.accuracy_score(y_true, y_pred))
    if name == "f1":
        return float(skm.f1_score(y_true, y_pred, pos_label=positive_class))
    if name == "macro_f1":
        return float(skm.f1_score(y_true, y_pred, average="macro", labels=classes))
    if name == "log_loss":
        # scikit-learn reads the columns of ``proba`` in sorted label order, whatever the order
        # of ``labels``: reorder, or a spec listing classes unsorted scores the wrong columns.
        order = sorted(range(len(classes)), key=lambda i: classes[i])
        return float(skm.log_loss(y_true, proba[:, order], labels=[classes[i] for i in order]))
    onehot = np.column_stack([(y_true == c).astype(float) for c in classes])
    if name == "roc_auc":
        if len(classes) == 2:
            index = classes.index(positive_class or classes[1])
            return float(skm.roc_auc_score(onehot[:, index], proba[:, index]))
        return float(skm.roc_auc_score(onehot, proba, average="macro", multi_class="ovr"))
    if name == "brier":
        return float(np.mean(np.sum((proba - onehot) ** 2, axis=1)))
    if name == "ece":
        return expected_calibration_error(onehot, proba)
    raise ValueError(f"unknown classification metric {name!r}")


def expected_calibration_error(onehot: np.ndarray, proba: np.ndarray, bins: int = 10) -> float:
    """ECE of the top-class confidence over equal-width bins."""
    confidence = proba.max(axis=1)
    correct = onehot[np.arange(len(onehot)), proba.argmax(axis=1)]
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        mask = (confidence > low) & (confidence <= high)
        if mask.any():
            total += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(total)
