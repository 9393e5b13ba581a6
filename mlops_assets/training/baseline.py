"""The trivial baseline a model must beat: what one could answer without learning anything.

A model that does not beat it on the same test rows has learnt nothing worth serving, however
well its numbers look on their own (a ROC AUC of 0.52 on labels unrelated to the features, an
RMSE close to the target's standard deviation). The promotion gate scores the baseline with
the same metrics as the models, so its predictions take the same form as
:func:`~mlops_assets.training.families.predict_frame`'s: ``(labels_or_values, proba_or_None)``.

- regression: the training mean, or the training median when the primary metric is ``mae``
  or ``wmape`` (the constant that minimises an absolute error is the median, not the mean);
- classification: the class prior of the training rows, as probabilities for every row, with
  the most frequent class as label;
- forecast: the seasonal-naive forecast (the target one season earlier, already a column of
  the model rows, e.g. ``lag_7``), the training mean where a row has none.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlops_assets.features.forecast import naive_column
from mlops_assets.specs.model import UseCaseSpec
from mlops_assets.training.families import clip_to_target

MEDIAN_METRICS = {"mae", "wmape"}
"""Metrics whose best constant answer is the median."""


def baseline_name(spec: UseCaseSpec) -> str:
    """What the baseline of ``spec`` is, for a person reading a promotion decision."""
    if spec.task == "forecast":
        return "seasonal naive"
    if spec.is_classification:
        return "class prior"
    return "training median" if spec.primary_metric in MEDIAN_METRICS else "training mean"


def _training_target(spec: UseCaseSpec, train: pd.DataFrame) -> pd.Series:
    if spec.target.name not in train.columns:
        raise ValueError(f"{spec.name}: the training rows have no target `{spec.target.name}`")
    target = train[spec.target.name]
    target = target[target.notna()]
    if target.empty:
        raise ValueError(f"{spec.name}: no labelled training rows for the baseline")
    return target


def class_prior(spec: UseCaseSpec, train: pd.DataFrame) -> np.ndarray:
    """Shares of each of ``spec.target.classes`` among the labelled training rows."""
    classes = list(spec.target.classes or [])
    labels = _training_target(spec, train).astype(str)
    counts = labels.value_counts().reindex(classes, fill_value=0).to_numpy(dtype=float)
    if counts.sum() == 0:
        raise ValueError(f"{spec.name}: no training row carries one of the classes {classes}")
    return counts / counts.sum()


def baseline_predictions(
    spec: UseCaseSpec, train: pd.DataFrame, test: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray | None]:
    """The baseline's predictions for the rows of ``test``, learnt from ``train`` only.

    Args:
        spec: The use case; for a forecast, the test rows carry the derived features.
        train: Training rows with the target (unlabelled rows are ignored).
        test: The rows to predict, in order.

    Returns:
        Values (regression, forecast) or labels with one probability column per class in
        ``spec.target.classes`` order (classification), like ``predict_frame``.

    Raises:
        ValueError: The training rows carry no usable target.
    """
    n = len(test)
    if spec.is_classification:
        classes = np.asarray(spec.target.classes or [], dtype=object)
        prior = class_prior(spec, train)
        labels = np.full(n, classes[int(np.argmax(prior))], dtype=object)
        return labels, np.tile(prior, (n, 1))
    target = pd.to_numeric(_training_target(spec, train), errors="coerce").dropna()
    if target.empty:
        raise ValueError(f"{spec.name}: the training target has no numeric value")
    median = spec.task != "forecast" and spec.primary_metric in MEDIAN_METRICS
    constant = float(target.median() if median else target.mean())
    values = np.full(n, constant, dtype=float)
    if spec.task == "forecast":
        column = naive_column(spec)
        if column in test.columns:
            naive = pd.to_numeric(test[column], errors="coerce").to_numpy(dtype=float)
            values = np.where(np.isnan(naive), constant, naive)
    return clip_to_target(values, spec), None
