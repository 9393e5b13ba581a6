"""Metrics: RMSSE per series, and the paired bootstrap of one model's improvement on another.

The bootstrap scores every metric in a vectorised form (from resample counts); each one is
checked against the library metric on the same resample, so the fast form cannot drift from
the metric the gate and training report.
"""

import math
import time

import numpy as np
import pytest

from mlops_assets.metrics import (
    classification_metric,
    direction,
    improvement,
    paired_bootstrap,
    regression_metric,
    resample_scorer,
    rmsse,
)
from mlops_assets.specs.model import METRIC_TASKS


def test_rmsse_hand_computed_per_series_then_averaged() -> None:
    # Series a: model errors 1, -1 -> MSE 1; naive errors 2, 2 -> MSE 4; ratio sqrt(1/4) = 0.5.
    # Series b: model errors 0, 3 -> MSE 4.5; naive errors 3, 0 -> MSE 4.5; ratio 1.
    y_true = np.array([5.0, 3.0, 0.0, 3.0])
    y_pred = np.array([4.0, 4.0, 0.0, 0.0])
    y_naive = np.array([3.0, 1.0, 3.0, 3.0])
    groups = np.array(["a", "a", "b", "b"])
    assert rmsse(y_true, y_pred, y_naive, groups) == pytest.approx(0.75)
    # One series: sqrt((1 + 1 + 0 + 9) / (4 + 4 + 9 + 0)) over all rows.
    assert rmsse(y_true, y_pred, y_naive) == pytest.approx(np.sqrt(11 / 17))


def test_rmsse_of_the_naive_forecast_itself_is_one() -> None:
    y_true = np.array([1.0, 4.0, 2.0, 0.0])
    naive = np.array([2.0, 2.0, 2.0, 1.0])
    assert rmsse(y_true, naive, naive) == pytest.approx(1.0)


def test_rmsse_skips_rows_without_naive_and_perfect_naive_series() -> None:
    y_true = np.array([2.0, 2.0, 1.0, 5.0])
    y_pred = np.array([2.0, 2.0, 3.0, 5.0])
    y_naive = np.array([2.0, 2.0, np.nan, 4.0])  # series x: naive perfect -> left out
    groups = np.array(["x", "x", "y", "y"])
    assert rmsse(y_true, y_pred, y_naive, groups) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="no series"):
        rmsse(y_true[:2], y_pred[:2], y_naive[:2], groups[:2])


def test_rmsse_is_minimised() -> None:
    assert direction("rmsse") == "minimize"


# ---------------------------------------------------------------- the paired bootstrap

N = 400
CLASSES = {"binary": ["e", "p"], "multiclass": ["a", "b", "c"]}


def regression_case(n: int = N, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    y = rng.gamma(2.0, 5.0, n)
    return {
        "y_true": y,
        "pred": np.clip(y + rng.normal(0, 3, n), 0, None),
        "y_naive": np.clip(y + rng.normal(0, 5, n), 0, None),
        "groups": rng.choice(list("abcdefghij"), n),
    }


def classification_case(task: str, n: int = N, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    classes = CLASSES[task]
    y = rng.choice(classes, n)
    logits = rng.normal(0, 1, (n, len(classes))) + 1.5 * np.column_stack(
        [(y == c).astype(float) for c in classes]
    )
    logits = np.round(logits * 2) / 2  # coarse scores: ties, which AUC counts as half
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
    return {"y_true": y, "pred": labels, "proba": proba, "classes": classes}


def reference_score(metric: str, case: dict, rows: np.ndarray, copies=None) -> float:
    """The library metric on the resampled rows (``copies``: series drawn more than once)."""
    if metric == "rmsse":
        groups = case["groups"][rows] if copies is None else copies
        return rmsse(case["y_true"][rows], case["pred"][rows], case["y_naive"][rows], groups)
    if "classes" in case:
        classes = case["classes"]
        return classification_metric(
            metric,
            case["y_true"][rows],
            case["pred"][rows],
            case["proba"][rows],
            classes,
            classes[1] if len(classes) == 2 else None,
        )
    return regression_metric(metric, case["y_true"][rows], case["pred"][rows])


def scorer_for(metric: str, case: dict):
    classes = case.get("classes")
    return resample_scorer(
        metric,
        case["y_true"],
        case["pred"],
        case.get("proba"),
        classes=classes,
        positive_class=classes[1] if classes and len(classes) == 2 else None,
        y_naive=case.get("y_naive"),
        groups=case.get("groups"),
    )


def cases_for(metric: str) -> list[tuple[str, dict]]:
    tasks = METRIC_TASKS[metric]
    found = []
    if tasks & {"regression", "forecast"}:
        found.append(("regression", regression_case()))
    for task in ("binary", "multiclass"):
        if task in tasks:
            found.append((task, classification_case(task)))
    return found


ALL_CASES = [(m, task, case) for m in sorted(METRIC_TASKS) for task, case in cases_for(m)]


@pytest.mark.parametrize(("metric", "task", "case"), ALL_CASES, ids=lambda v: str(v)[:12])
def test_resample_scorer_equals_the_library_metric(metric, task, case) -> None:
    """On the rows as they are and on one resample: the vectorised metric is the metric."""
    scorer, units, resampled = scorer_for(metric, case)
    n_rows = len(case["y_true"])
    assert scorer(np.ones((1, units)))[0] == pytest.approx(
        reference_score(metric, case, np.arange(n_rows)), rel=1e-9, abs=1e-12
    )
    rng = np.random.default_rng(3)
    drawn = rng.integers(0, units, units)
    counts = np.bincount(drawn, minlength=units).astype(float)[None, :]
    if resampled == "series":
        _, keys = np.unique(case["groups"], return_inverse=True)
        rows = np.concatenate([np.flatnonzero(keys == g) for g in drawn])
        copies = np.concatenate([np.full((keys == g).sum(), i) for i, g in enumerate(drawn)])
        expected = reference_score(metric, case, rows, copies)
    else:
        expected = reference_score(metric, case, drawn)
    assert scorer(counts)[0] == pytest.approx(expected, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(("metric", "task", "case"), ALL_CASES, ids=lambda v: str(v)[:12])
def test_a_model_against_itself_improves_by_nothing(metric, task, case) -> None:
    classes = case.get("classes")
    result = paired_bootstrap(
        metric,
        case["y_true"],
        case["pred"],
        case.get("proba"),
        case["pred"],
        case.get("proba"),
        classes=classes,
        positive_class=classes[1] if classes and len(classes) == 2 else None,
        y_naive=case.get("y_naive"),
        groups=case.get("groups"),
        n=50,
    )
    assert result.improvement == 0 and result.difference == 0
    assert result.low == result.high == 0
    assert result.replicates + result.skipped == 50


def test_a_clearly_better_regressor_is_better_beyond_noise() -> None:
    case = regression_case(2000)
    constant = np.full(2000, case["y_true"].mean())
    result = paired_bootstrap("rmse", case["y_true"], case["pred"], None, constant, None, n=300)
    assert result.score_a < result.score_b
    assert result.improvement == pytest.approx(improvement("rmse", result.score_a, result.score_b))
    assert 0 < result.low < result.improvement < result.high
    assert 0 < result.difference_low < result.difference < result.difference_high
    reverse = paired_bootstrap("rmse", case["y_true"], constant, None, case["pred"], None, n=300)
    assert reverse.high < 0 and reverse.difference == pytest.approx(-result.difference)


def test_noise_probabilities_are_not_better_than_the_prior_beyond_noise() -> None:
    rng = np.random.default_rng(11)
    y = rng.choice(["no", "yes"], 500)
    noise = rng.uniform(0, 1, 500)
    proba = np.column_stack([1 - noise, noise])
    prior = np.tile([np.mean(y == "no"), np.mean(y == "yes")], (500, 1))
    result = paired_bootstrap(
        "roc_auc", y, None, proba, None, prior, classes=["no", "yes"], positive_class="yes"
    )
    assert result.score_b == pytest.approx(0.5)
    assert result.low <= 0 <= result.high


def test_rmsse_resamples_whole_series() -> None:
    case = regression_case(600)
    result = paired_bootstrap(
        "rmsse",
        case["y_true"],
        case["pred"],
        None,
        case["y_naive"],
        None,
        y_naive=case["y_naive"],
        groups=case["groups"],
        n=200,
    )
    assert result.resampled == "series"
    assert result.score_b == pytest.approx(1.0)  # the naive forecast scaled by itself
    assert result.low > 0  # the model's errors are smaller than the naive forecast's
    y, pred, naive = case["y_true"], case["pred"], case["y_naive"]
    one = paired_bootstrap("rmsse", y, pred, None, naive, None, y_naive=naive, n=50)
    assert one.resampled == "rows"


def test_degenerate_resamples_are_skipped() -> None:
    y = np.array(["p"] + ["e"] * 29)  # one positive: a resample often has none
    proba = np.column_stack([np.linspace(0.9, 0.1, 30), np.linspace(0.1, 0.9, 30)])
    prior = np.tile([29 / 30, 1 / 30], (30, 1))
    result = paired_bootstrap(
        "roc_auc", y, None, proba, None, prior, classes=["e", "p"], positive_class="p", n=200
    )
    assert result.skipped > 0 and result.replicates + result.skipped == 200
    assert np.isfinite(result.low) and np.isfinite(result.high)


def test_missing_inputs_are_errors() -> None:
    with pytest.raises(ValueError, match="needs class probabilities"):
        paired_bootstrap(
            "log_loss", ["a", "b"], ["a", "b"], None, ["a", "a"], None, classes=["a", "b"]
        )
    with pytest.raises(ValueError, match="y_naive"):
        paired_bootstrap("rmsse", [1.0], [1.0], None, [2.0], None)
    with pytest.raises(ValueError, match="needs the classes"):
        paired_bootstrap("accuracy", ["a"], ["a"], None, ["a"], None)


@pytest.mark.parametrize("metric", ["rmse", "log_loss", "roc_auc"])
def test_a_thousand_replicates_on_5000_rows_are_fast(metric) -> None:
    if metric == "rmse":
        case = regression_case(5000)
        args = (case["y_true"], case["pred"], None, case["y_naive"], None)
        options = {}
    else:
        case = classification_case("binary", 5000)
        prior = np.tile([0.5, 0.5], (5000, 1))
        args = (case["y_true"], case["pred"], case["proba"], case["pred"], prior)
        options = {"classes": case["classes"], "positive_class": "p"}
    started = time.perf_counter()
    result = paired_bootstrap(metric, *args, n=1000, **options)
    assert time.perf_counter() - started < 3.0
    assert result.replicates == 1000


def test_improvement_over_a_perfect_incumbent_is_signed() -> None:
    assert improvement("rmse", 1.0, 0.0) == float("-inf")
    assert improvement("r2", 0.5, 0.0) == float("inf")
    assert improvement("rmse", 0.0, 0.0) == 0.0


def test_a_zero_forecast_of_a_day_that_sold_does_not_decide_tweedie_deviance() -> None:
    """Predictions are floored at 1% of the mean actual: one zero no longer scores 10,000s."""
    from mlops_assets.metrics import regression_metric

    y_true = np.array([3.0, 0.0, 1.0, 2.0, 5.0, 0.0, 1.0, 4.0] * 25)
    good = np.clip(y_true + 0.3, 0.1, None)
    one_zero = good.copy()
    one_zero[0] = 0.0
    mean = np.full_like(y_true, y_true.mean())
    assert regression_metric("tweedie_deviance", y_true, one_zero) < regression_metric(
        "tweedie_deviance", y_true, mean
    )
    assert np.isfinite(regression_metric("tweedie_deviance", y_true, np.zeros_like(y_true)))


@pytest.mark.parametrize(
    ("value", "rounded", "text"),
    [
        (1591.1414027022909, 1591.0, "1591.14"),
        (0.0345678, 0.03457, "0.03457"),
        (0.5365123, 0.5365, "0.5365"),
        (12.3456, 12.35, "12.35"),
        (-0.000123456, -0.0001235, "-0.0001235"),
        (0.0, 0.0, "0"),
    ],
)
def test_numbers_for_people(value: float, rounded: float, text: str) -> None:
    from mlops_assets.metrics import shown, significant

    assert significant(value) == rounded and isinstance(significant(value), float)
    assert shown(value) == text


def test_rounding_keeps_nan_and_what_is_not_a_fraction() -> None:
    import dagster as dg

    from mlops_assets.components.checks import as_metadata
    from mlops_assets.metrics import shown, significant

    assert math.isnan(significant(float("nan"))) and shown(None) == "-"
    values = as_metadata({"rmse": 1591.1414027, "rows": 12, "ok": True, "psi": np.float32(0.12345)})
    assert values["rmse"] == 1591.0 and values["rows"] == 12 and values["ok"] is True
    assert values["psi"] == 0.1235 and not isinstance(values["rows"], dg.MetadataValue)
    typed = dg.MetadataValue.json({"a": 1})
    assert as_metadata({"params": typed})["params"] is typed
