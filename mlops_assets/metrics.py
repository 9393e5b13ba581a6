"""Metrics by name, with the direction that makes a score better.

The primary metric of a spec drives both tuning (the Optuna direction) and promotion (the
margin test), so both read it from here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

HIGHER_IS_BETTER = {"accuracy", "f1", "macro_f1", "roc_auc", "r2"}


def direction(metric: str) -> str:
    """Optuna direction for a metric: ``maximize`` or ``minimize``."""
    return "maximize" if metric in HIGHER_IS_BETTER else "minimize"


def improvement(metric: str, challenger: float, incumbent: float) -> float:
    """Relative improvement of the challenger over the incumbent (positive = better).

    Against an incumbent scoring exactly 0 the relative change is unbounded: plus infinity when
    the challenger is better, minus infinity when it is worse (a perfect RMSE of 0 must not be
    replaced by a worse one).
    """
    sign = 1.0 if metric in HIGHER_IS_BETTER else -1.0
    if incumbent == 0:
        return 0.0 if challenger == incumbent else math.copysign(math.inf, sign * challenger)
    return sign * (challenger - incumbent) / abs(incumbent)


TWEEDIE_FLOOR_SHARE = 0.01


def tweedie_floor(y_true: np.ndarray) -> float:
    """The smallest prediction Tweedie deviance scores: 1% of the mean actual (at least 1e-6).

    The deviance of a zero prediction for a positive actual is infinite, and of a tiny one
    enormous (a zero-sales forecast of a day that sold scored 25,000 where the model scored 4):
    one such row would decide the metric. A floor in the target's own scale keeps it a
    measure of the whole forecast.
    """
    values = np.abs(np.asarray(y_true, dtype=float))
    mean = float(np.nanmean(values)) if values.size else 0.0
    return max(1e-6, TWEEDIE_FLOOR_SHARE * mean)


def significant(value: float, digits: int = 4) -> float:
    """``value`` rounded to ``digits`` significant digits, still a number.

    For metadata the UI plots: ``1591.1414027`` -> ``1591.0``, ``0.0345678`` -> ``0.03457``;
    NaN and infinity stay.
    """
    if not math.isfinite(value) or value == 0:
        return float(value)
    return round(float(value), digits - 1 - math.floor(math.log10(abs(value))))


def shown(value: float | None) -> str:
    """A score as people read it: two decimals from 100 up, else four significant digits.

    ``1591.1414027`` -> ``1591.14``, ``0.536512`` -> ``0.5365``, ``None`` -> ``-``.
    """
    if value is None:
        return "-"
    if not math.isfinite(value):
        return str(value)
    return f"{value:.2f}" if abs(value) >= 100 else f"{value:.4g}"


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
        floor = tweedie_floor(y_true)
        return float(skm.mean_tweedie_deviance(y_true, np.clip(y_pred, floor, None), power=1.5))
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


# ---------------------------------------------------------------- paired bootstrap

PROBABILITY_METRICS = {"roc_auc", "log_loss", "brier", "ece"}
"""Classification metrics read from probabilities, not labels."""
TWEEDIE_POWER = 1.5
"""Power of the Tweedie deviance (``regression_metric`` uses the same)."""
_CELLS_PER_CHUNK = 2_000_000
"""Resample weights held in memory at once (replicates x rows), about 16 MB."""

Scorer = Callable[[np.ndarray], np.ndarray]
"""Scores of one model under each row of a (replicates x units) matrix of resample counts."""


@dataclass(frozen=True)
class PairedBootstrap:
    """How much model A improves on model B on the same rows, and how sure that is.

    Improvements are signed in the metric's direction: positive means A is better, whether the
    metric is maximised or minimised. ``improvement`` is relative (as :func:`improvement`),
    ``difference`` absolute; ``low``/``high`` and ``difference_low``/``difference_high`` are the
    percentiles of the replicates' improvements bounding the central ``level`` share of them.
    """

    metric: str
    score_a: float
    score_b: float
    improvement: float
    difference: float
    low: float
    high: float
    difference_low: float
    difference_high: float
    replicates: int
    skipped: int
    level: float
    resampled: str

    def as_dict(self) -> dict[str, Any]:
        """A plain mapping for metadata and tags."""
        return asdict(self)


def _mean_of(losses: np.ndarray) -> Scorer:
    """Scorer of a metric that is a mean of per-row values."""
    return lambda counts: counts @ losses / counts.sum(axis=1)


def _regression_scorer(name: str, y: np.ndarray, pred: np.ndarray) -> Scorer:
    error = y - pred
    if name == "rmse":
        squared = _mean_of(error**2)
        return lambda counts: np.sqrt(squared(counts))
    if name == "mae":
        return _mean_of(np.abs(error))
    if name == "wmape":
        absolute, scale = np.abs(error), np.abs(y)

        def wmape(counts: np.ndarray) -> np.ndarray:
            total = counts @ scale
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.where(total > 0, (counts @ absolute) / total, np.nan)

        return wmape
    if name == "r2":
        centred = y - y.mean()  # shifting the target leaves R2 unchanged and keeps sums small

        def r2(counts: np.ndarray) -> np.ndarray:
            weight = counts.sum(axis=1)
            residual = counts @ error**2
            total = counts @ centred**2 - (counts @ centred) ** 2 / weight
            constant = total <= 1e-12 * np.maximum(counts @ centred**2, 1e-300)
            with np.errstate(divide="ignore", invalid="ignore"):
                score = 1 - residual / total
            # scikit-learn's convention for a constant target: 1 if perfect, else 0.
            return np.where(constant, np.where(residual == 0, 1.0, 0.0), score)

        return r2
    if name == "tweedie_deviance":
        p = TWEEDIE_POWER
        actual = np.where(y > 0, y, 0.0)
        magnitude = np.abs(y)

        def tweedie(counts: np.ndarray) -> np.ndarray:
            # The floor follows each replicate's own actuals, as the metric on its rows would.
            weight = counts.sum(axis=1)
            floors = np.maximum(1e-6, TWEEDIE_FLOOR_SHARE * (counts @ magnitude) / weight)
            mu = np.maximum(pred[None, :], floors[:, None])
            deviance = 2 * (
                np.power(actual, 2 - p)[None, :] / ((1 - p) * (2 - p))
                - y[None, :] * np.power(mu, 1 - p) / (1 - p)
                + np.power(mu, 2 - p) / (2 - p)
            )
            return (counts * deviance).sum(axis=1) / weight

        return tweedie
    raise ValueError(f"unknown regression metric {name!r}")


def _binary_auc(positive: np.ndarray, score: np.ndarray) -> Scorer:
    """Weighted Mann-Whitney AUC (ties count half), as ``roc_auc_score`` on repeated rows."""
    order = np.argsort(score, kind="stable")
    ranked = score[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    is_positive = positive[order].astype(float)

    def auc(counts: np.ndarray) -> np.ndarray:
        weights = counts[:, order]
        pos = np.add.reduceat(weights * is_positive, starts, axis=1)
        neg = np.add.reduceat(weights * (1 - is_positive), starts, axis=1)
        below = np.cumsum(neg, axis=1) - neg
        pairs = pos.sum(axis=1) * neg.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(pairs > 0, (pos * (below + 0.5 * neg)).sum(axis=1) / pairs, np.nan)

    return auc


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> Scorer:
    def f1(counts: np.ndarray) -> np.ndarray:
        hits, denominator = 2 * (counts @ tp), 2 * (counts @ tp) + counts @ fp + counts @ fn
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(denominator > 0, hits / denominator, 0.0)  # scikit-learn: 0

    return f1


def _classification_scorer(
    name: str,
    y: np.ndarray,
    labels: np.ndarray | None,
    proba: np.ndarray | None,
    classes: list[str],
    positive_class: str | None,
) -> Scorer:
    if name in PROBABILITY_METRICS:
        if proba is None:
            raise ValueError(f"{name} needs class probabilities")
        proba = np.asarray(proba, dtype=float)
        onehot = np.column_stack([(y == c).astype(float) for c in classes])
        if name == "log_loss":
            eps = np.finfo(float).eps
            return _mean_of(-np.log(np.clip((proba * onehot).sum(axis=1), eps, 1 - eps)))
        if name == "brier":
            return _mean_of(np.sum((proba - onehot) ** 2, axis=1))
        if name == "ece":
            confidence = proba.max(axis=1)
            correct = onehot[np.arange(len(onehot)), proba.argmax(axis=1)]
            edges = np.linspace(0, 1, 11)
            bins = np.searchsorted(edges, confidence, side="left") - 1  # (low, high] bins
            inside = (bins >= 0) & (bins < len(edges) - 1)
            gaps = np.zeros((len(y), len(edges) - 1))
            gaps[np.flatnonzero(inside), bins[inside]] = (correct - confidence)[inside]
            return lambda counts: np.abs(counts @ gaps).sum(axis=1) / counts.sum(axis=1)
        # roc_auc
        if len(classes) == 2:
            index = classes.index(positive_class or classes[1])
            return _binary_auc(onehot[:, index] > 0, proba[:, index])
        per_class = [_binary_auc(onehot[:, k] > 0, proba[:, k]) for k in range(len(classes))]
        # Macro average; a resample missing a class has no AUC for it (NaN, then skipped).
        return lambda counts: np.mean([score(counts) for score in per_class], axis=0)
    if labels is None:
        raise ValueError(f"{name} needs predicted labels")
    predicted = np.asarray(labels, dtype=object).astype(str)
    if name == "accuracy":
        return _mean_of((predicted == y).astype(float))
    if name == "f1":
        is_true, is_pred = y == positive_class, predicted == positive_class
        return _f1(
            (is_true & is_pred).astype(float),
            (~is_true & is_pred).astype(float),
            (is_true & ~is_pred).astype(float),
        )
    if name == "macro_f1":
        per_class = [
            _f1(
                ((y == c) & (predicted == c)).astype(float),
                ((y != c) & (predicted == c)).astype(float),
                ((y == c) & (predicted != c)).astype(float),
            )
            for c in classes
        ]
        return lambda counts: np.mean([score(counts) for score in per_class], axis=0)
    raise ValueError(f"unknown classification metric {name!r}")


def _rmsse_parts(
    y: np.ndarray, pred: np.ndarray, y_naive: np.ndarray, keys: np.ndarray, n_groups: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per group: the model's and the naive forecast's squared errors summed over known rows."""
    known = ~np.isnan(y_naive) & ~np.isnan(y)
    model = np.bincount(keys[known], (y[known] - pred[known]) ** 2, minlength=n_groups)
    naive = np.bincount(keys[known], (y[known] - y_naive[known]) ** 2, minlength=n_groups)
    return model, naive


def _rmsse_scorer(
    y: np.ndarray, pred: np.ndarray, y_naive: np.ndarray, keys: np.ndarray, n_groups: int
) -> Scorer:
    """RMSSE under resampled series (``n_groups`` > 1) or, for one series, resampled rows."""
    known = ~np.isnan(y_naive) & ~np.isnan(y)
    if n_groups == 1:
        model = np.where(known, (y - pred) ** 2, 0.0)
        naive = np.where(known, (y - y_naive) ** 2, 0.0)

        def one_series(counts: np.ndarray) -> np.ndarray:
            scale = counts @ naive
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.where(scale > 0, np.sqrt((counts @ model) / scale), np.nan)

        return one_series
    model_sse, naive_sse = _rmsse_parts(y, pred, y_naive, keys, n_groups)
    defined = naive_sse > 0
    # Both errors are means over the same rows of a series: the ratio of MSEs is that of sums.
    ratio = np.sqrt(np.divide(model_sse, naive_sse, out=np.zeros(n_groups), where=defined))

    def series(counts: np.ndarray) -> np.ndarray:
        used = counts @ defined.astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(used > 0, (counts @ ratio) / used, np.nan)

    return series


def resample_scorer(
    metric: str,
    y_true: Sequence[Any] | np.ndarray,
    pred: Sequence[Any] | np.ndarray | None,
    proba: np.ndarray | None,
    *,
    classes: Sequence[str] | None = None,
    positive_class: str | None = None,
    y_naive: np.ndarray | None = None,
    groups: np.ndarray | None = None,
) -> tuple[Scorer, int, str]:
    """One model's metric as a function of resample counts, for the bootstrap.

    A resample is a vector of counts, how often each unit was drawn; scoring a matrix of them
    at once (one row per replicate) is what makes a thousand replicates cheap. A row of ones
    gives the metric on the rows as they are, equal to :func:`regression_metric`,
    :func:`classification_metric` or :func:`rmsse`.

    Returns:
        The scorer, the number of units counts refer to, and what a unit is: ``"rows"``, or
        ``"series"`` for ``rmsse`` over several series.

    Raises:
        ValueError: The metric is unknown or lacks an input it needs.
    """
    names = list(classes or [])
    if metric == "rmsse":
        if y_naive is None:
            raise ValueError("rmsse needs the seasonal-naive forecast of each row (y_naive)")
        y = np.asarray(y_true, dtype=float)
        source = np.zeros(len(y), dtype=int) if groups is None else np.asarray(groups)
        _, keys = np.unique(source, return_inverse=True)
        n_groups = int(keys.max()) + 1 if len(keys) else 0
        naive = np.asarray(y_naive, dtype=float)
        scorer = _rmsse_scorer(y, np.asarray(pred, dtype=float), naive, keys, n_groups)
        if n_groups > 1:
            return scorer, n_groups, "series"
        return scorer, len(y), "rows"
    if names:
        y = np.asarray(y_true, dtype=object).astype(str)
        scorer = _classification_scorer(metric, y, pred, proba, names, positive_class)
        return scorer, len(y), "rows"
    if metric in PROBABILITY_METRICS or metric in {"accuracy", "f1", "macro_f1"}:
        raise ValueError(f"{metric} needs the classes")
    y = np.asarray(y_true, dtype=float)
    return _regression_scorer(metric, y, np.asarray(pred, dtype=float)), len(y), "rows"


def _percentiles(values: np.ndarray, level: float) -> tuple[float, float]:
    if not len(values):
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def paired_bootstrap(
    metric: str,
    y_true: Sequence[Any] | np.ndarray,
    pred_a: Sequence[Any] | np.ndarray | None,
    proba_a: np.ndarray | None,
    pred_b: Sequence[Any] | np.ndarray | None,
    proba_b: np.ndarray | None,
    *,
    classes: Sequence[str] | None = None,
    positive_class: str | None = None,
    y_naive: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    n: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> PairedBootstrap:
    """Improvement of model A over model B on the same test rows, with a bootstrap interval.

    A difference in score on a few hundred test rows can be noise: a model fitted to labels
    unrelated to its features still scores a ROC AUC of 0.53 against the prior's 0.5 now and
    then. Each replicate resamples the test rows with replacement once and scores both models
    on that same resample (a paired bootstrap), so what the two share (hard rows, easy rows)
    cancels and the interval reflects the difference only. For ``rmsse`` whole series are
    resampled (``groups``), since rows of one series are not independent and the metric is a
    mean over series; with one series its rows are resampled.

    Every metric of ``specs.model.METRIC_TASKS`` is computed in vectorised form from the
    resample counts (replicates x rows) in chunks of about two million cells, ROC AUC included
    (a weighted Mann-Whitney statistic over the sorted scores), so 1000 replicates on 5,000
    rows take well under a second for mean-type metrics and about a second for ROC AUC: no
    metric needs fewer replicates. A resample on which a metric is undefined for either model
    (one class only for ROC AUC, no series with a naive error for RMSSE) is skipped and
    counted in ``skipped``.

    Args:
        metric: A metric name of ``METRIC_TASKS``.
        y_true: True targets (values, or class labels compared as text).
        pred_a: Model A's values or labels (``None`` for a probability metric).
        proba_a: Model A's class probabilities, one column per class in ``classes`` order.
        pred_b: Model B's values or labels.
        proba_b: Model B's class probabilities.
        classes: The classes, in the probability columns' order (classification).
        positive_class: The class ``f1`` and a binary ``roc_auc`` are about.
        y_naive: Per-row seasonal-naive forecast (``rmsse``).
        groups: Per-row series key (``rmsse``); ``None`` is one series.
        n: Bootstrap replicates.
        seed: Seed of the resampling.
        level: Central share of the replicates the interval bounds (0.95: 2.5 to 97.5%).

    Returns:
        The observed scores and improvements and the interval of the improvement.

    Raises:
        ValueError: The metric is unknown, lacks its inputs, or is undefined on the rows.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    options = dict(classes=classes, positive_class=positive_class, y_naive=y_naive, groups=groups)
    scorer_a, units, resampled = resample_scorer(metric, y_true, pred_a, proba_a, **options)
    scorer_b, _, _ = resample_scorer(metric, y_true, pred_b, proba_b, **options)
    scorers = [scorer_a, scorer_b]
    if units == 0:
        raise ValueError(f"{metric}: no rows to compare on")

    ones = np.ones((1, units))
    score_a, score_b = (float(scorer(ones)[0]) for scorer in scorers)
    if not (np.isfinite(score_a) and np.isfinite(score_b)):
        raise ValueError(f"{metric} is undefined on these rows ({score_a}, {score_b})")
    sign = 1.0 if metric in HIGHER_IS_BETTER else -1.0

    rng = np.random.default_rng(seed)
    chunk = max(1, min(n, _CELLS_PER_CHUNK // units))
    relative: list[np.ndarray] = []
    absolute: list[np.ndarray] = []
    skipped = 0
    for start in range(0, n, chunk):
        size = min(chunk, n - start)
        drawn = rng.integers(0, units, (size, units)) + units * np.arange(size)[:, None]
        counts = np.bincount(drawn.ravel(), minlength=size * units).reshape(size, units)
        counts = counts.astype(float)
        a, b = scorers[0](counts), scorers[1](counts)
        valid = np.isfinite(a) & np.isfinite(b)
        skipped += int((~valid).sum())
        a, b = a[valid], b[valid]
        change = sign * (a - b)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(b != 0, change / np.abs(b), np.where(change == 0, 0.0, change * np.inf))
        relative.append(rel)
        absolute.append(change)
    rel_all, abs_all = np.concatenate(relative), np.concatenate(absolute)
    low, high = _percentiles(rel_all, level)
    difference_low, difference_high = _percentiles(abs_all, level)
    return PairedBootstrap(
        metric=metric,
        score_a=score_a,
        score_b=score_b,
        improvement=improvement(metric, score_a, score_b),
        difference=sign * (score_a - score_b),
        low=low,
        high=high,
        difference_low=difference_low,
        difference_high=difference_high,
        replicates=len(rel_all),
        skipped=skipped,
        level=level,
        resampled=resampled,
    )
