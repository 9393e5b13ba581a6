"""Model families: predictions stay inside the target's range; defaults and caps of boosting.

A Ridge fitted where sales grow with a feature extrapolates to negative sales for small values
of it; a target declared ``min: 0`` must never be answered below zero, by training metrics,
monitoring or serving alike (they all predict through ``predict_frame``).
"""

import time

import numpy as np
import pandas as pd
import pytest

from mlops_assets.metrics import regression_metric
from mlops_assets.specs.catalog import parse_spec
from mlops_assets.training.families import (
    CATBOOST_ITERATIONS,
    HGB_CHUNK,
    HGB_MAX_ITER,
    StopAtDeadline,
    build_pipeline,
    fit_pipeline,
    fitted_iterations,
    library_defaults,
    predict_frame,
    refit_pipeline,
)


def regression_spec(target: dict) -> object:
    return parse_spec(
        {
            "name": "sales",
            "task": "regression",
            "target": target,
            "features": [{"name": "x", "type": "numeric"}],
            "primary_metric": "rmse",
            "partitions": {"start_date": "2024-01-01"},
            "models": [{"family": "ridge"}],
        }
    )


def ridge_that_extrapolates_below_zero(spec) -> tuple[object, pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 10, 400)
    y = np.maximum(0.0, 30 * (x - 3) + rng.normal(0, 5, 400))  # zero below x = 3
    train = pd.DataFrame({"x": x})
    pipeline = build_pipeline(spec, "ridge", {"alpha": 1.0})
    pipeline.fit(train, y)
    test_x = np.linspace(-5, 10, 300)
    test_y = np.maximum(0.0, 30 * (test_x - 3))
    return pipeline, pd.DataFrame({"x": test_x}), test_y


def test_a_target_with_min_zero_never_gets_a_negative_prediction() -> None:
    unbounded = regression_spec({"name": "y"})
    bounded = regression_spec({"name": "y", "min": 0})
    pipeline, test, test_y = ridge_that_extrapolates_below_zero(bounded)
    raw, _ = predict_frame(pipeline, test, unbounded)
    clipped, proba = predict_frame(pipeline, test, bounded)
    assert proba is None
    assert raw.min() < -50  # the linear fit goes well below zero
    assert clipped.min() == 0.0
    np.testing.assert_array_equal(clipped, np.maximum(raw, 0.0))
    deviance = regression_metric("tweedie_deviance", test_y, clipped)
    assert np.isfinite(deviance)
    # Sane: no worse than answering the mean of the true values everywhere.
    constant = np.full_like(test_y, test_y.mean())
    assert deviance < regression_metric("tweedie_deviance", test_y, constant)


def test_a_target_max_clips_from_above() -> None:
    spec = regression_spec({"name": "y", "min": 0, "max": 100})
    pipeline, test, _ = ridge_that_extrapolates_below_zero(spec)
    values, _ = predict_frame(pipeline, test, spec)
    assert values.min() == 0.0 and values.max() == 100.0


def test_boosting_caps_are_raised_unless_the_spec_fixes_them() -> None:
    spec = regression_spec({"name": "y"})
    hgb = build_pipeline(spec, "hist_gradient_boosting", {}).named_steps["model"]
    assert hgb.max_iter == HGB_MAX_ITER and hgb.early_stopping is True
    catboost = build_pipeline(spec, "catboost", {}).named_steps["model"]
    assert catboost.get_params()["iterations"] == CATBOOST_ITERATIONS
    fixed = build_pipeline(spec, "catboost", {"iterations": 300}).named_steps["model"]
    assert fixed.get_params()["iterations"] == 300


def test_hist_gradient_boosting_reports_where_it_stopped() -> None:
    spec = regression_spec({"name": "y"})
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"x": rng.uniform(0, 1, 600)})
    y = pd.Series(np.sin(6 * X["x"]) + rng.normal(0, 0.3, 600))
    pipeline = build_pipeline(spec, "hist_gradient_boosting", {})
    stopped = fit_pipeline(pipeline, X, y, early_stopping_rounds=10)
    assert stopped is not None and 1 <= stopped < HGB_MAX_ITER


@pytest.mark.parametrize(
    ("family", "name", "value"),
    [
        ("hist_gradient_boosting", "learning_rate", 0.1),
        ("hist_gradient_boosting", "max_leaf_nodes", 31),
        ("ridge", "alpha", 1.0),
        ("random_forest", "max_depth", None),
        ("catboost", "depth", 6),
        ("catboost", "learning_rate", None),
    ],
)
def test_library_defaults(family, name, value) -> None:
    assert library_defaults(regression_spec({"name": "y"}), family)[name] == value


def test_a_catboost_fit_ends_at_its_deadline_with_the_trees_built_so_far() -> None:
    """A deadline already past stops the boosting after its first tree; none keeps all 300."""
    spec = regression_spec({"name": "y"})
    rng = np.random.default_rng(2)
    X = pd.DataFrame({"x": rng.uniform(0, 1, 400)})
    y = pd.Series(np.sin(6 * X["x"]) + rng.normal(0, 0.1, 400))
    late = StopAtDeadline(time.time() - 1)
    pipeline = build_pipeline(spec, "catboost", {"iterations": 300, "learning_rate": 0.01})
    fit_pipeline(pipeline, X, y, early_stopping_rounds=300, stop=late)
    assert late.stopped and pipeline.named_steps["model"].tree_count_ == 1
    refit = build_pipeline(spec, "catboost", {"iterations": 300, "learning_rate": 0.01})
    refit_pipeline(refit, X, y, StopAtDeadline(time.time() - 1))
    assert refit.named_steps["model"].tree_count_ == 1
    timely = StopAtDeadline(time.time() + 3600)
    whole = build_pipeline(spec, "catboost", {"iterations": 300, "learning_rate": 0.01})
    fit_pipeline(whole, X, y, early_stopping_rounds=300, stop=timely)
    assert not timely.stopped and whole.named_steps["model"].tree_count_ == 300


def test_a_hist_gradient_boosting_refit_grows_until_its_deadline() -> None:
    """Without a deadline the warm-started chunks make the same model as one fit; past it, the
    refit stops after its first chunk."""
    spec = regression_spec({"name": "y"})
    rng = np.random.default_rng(3)
    X = pd.DataFrame({"x": rng.uniform(0, 1, 500), "z": rng.uniform(0, 1, 500)})
    y = pd.Series(np.sin(6 * X["x"]) + X["z"] + rng.normal(0, 0.1, 500))
    params = {"max_iter": 60, "early_stopping": False}
    whole = build_pipeline(spec, "hist_gradient_boosting", params)
    whole.fit(X, y)
    grown = build_pipeline(spec, "hist_gradient_boosting", params)
    refit_pipeline(grown, X, y, StopAtDeadline(time.time() + 3600))
    assert fitted_iterations(grown) == 60
    assert np.array_equal(whole.predict(X), grown.predict(X))
    late = StopAtDeadline(time.time() - 1)
    cut = build_pipeline(spec, "hist_gradient_boosting", params)
    refit_pipeline(cut, X, y, late)
    assert late.stopped and fitted_iterations(cut) == HGB_CHUNK


@pytest.mark.parametrize("stopping", [True, False])
def test_hist_gradient_boosting_grown_in_chunks_is_the_model_of_one_fit(stopping) -> None:
    """A fit with a deadline (warm-started chunks) equals one fit, its early stopping too."""
    spec = regression_spec({"name": "y"})
    rng = np.random.default_rng(4)
    X = pd.DataFrame({"x": rng.uniform(0, 1, 800)})
    y = pd.Series(np.sin(6 * X["x"]) + rng.normal(0, 0.4, 800))
    params = {"max_iter": 300, "learning_rate": 0.3} | (
        {} if stopping else {"early_stopping": False}
    )
    whole = build_pipeline(spec, "hist_gradient_boosting", params)
    once = fit_pipeline(whole, X, y, early_stopping_rounds=10)
    chunked = build_pipeline(spec, "hist_gradient_boosting", params)
    grown = fit_pipeline(chunked, X, y, 10, stop=StopAtDeadline(time.time() + 3600))
    assert grown == once and fitted_iterations(chunked) == fitted_iterations(whole)
    assert (fitted_iterations(whole) < 300) == stopping
    assert np.array_equal(whole.predict(X), chunked.predict(X))
