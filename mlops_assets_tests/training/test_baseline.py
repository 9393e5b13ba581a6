"""The trivial baseline: the constant, prior or seasonal-naive answer a model must beat."""

import numpy as np
import pandas as pd
import pytest

from mlops_assets.features.derived import model_spec
from mlops_assets.features.forecast import naive_column
from mlops_assets.specs import use_case_specs
from mlops_assets.specs.catalog import parse_spec
from mlops_assets.training.baseline import baseline_name, baseline_predictions
from mlops_assets.training.evaluation import bootstrap_improvement, score_predictions


def spec_for(task: str, metric: str, **target) -> object:
    classes = {"binary": ["no", "yes"], "multiclass": ["a", "b", "c"]}.get(task)
    return parse_spec(
        {
            "name": "uc",
            "task": task,
            "target": {
                "name": "y",
                **({"classes": classes} if classes else {}),
                **({"positive_class": "yes"} if task == "binary" else {}),
                **target,
            },
            "features": [{"name": "x", "type": "numeric"}],
            "primary_metric": metric,
            "partitions": {"start_date": "2024-01-01"},
            "models": [{"family": "ridge" if classes is None else "logistic_regression"}],
        }
    )


SKEWED = pd.DataFrame({"x": range(6), "y": [1.0, 1.0, 2.0, 2.0, 3.0, 100.0]})


@pytest.mark.parametrize(
    ("metric", "name", "value"),
    [
        ("rmse", "training mean", SKEWED["y"].mean()),
        ("r2", "training mean", SKEWED["y"].mean()),
        ("mae", "training median", 2.0),
        ("wmape", "training median", 2.0),
    ],
)
def test_regression_baseline_is_the_best_constant_of_the_metric(metric, name, value) -> None:
    spec = spec_for("regression", metric)
    test = pd.DataFrame({"x": [0.0, 1.0, 2.0]})
    values, proba = baseline_predictions(spec, SKEWED, test)
    assert baseline_name(spec) == name
    assert proba is None
    np.testing.assert_allclose(values, value)


def test_median_beats_mean_on_mae_of_a_skewed_target() -> None:
    rows = SKEWED.assign(y=lambda f: f["y"].astype(float))
    mae = spec_for("regression", "mae")
    rmse = spec_for("regression", "rmse")
    median, _ = baseline_predictions(mae, rows, rows)
    mean, _ = baseline_predictions(rmse, rows, rows)
    y = rows["y"]
    assert (
        score_predictions(mae, y, median, None)["mae"]
        < score_predictions(mae, y, mean, None)["mae"]
    )


def test_regression_baseline_ignores_unlabelled_rows_and_respects_the_range() -> None:
    spec = spec_for("regression", "rmse", min=5)
    train = pd.DataFrame({"x": [1, 2, 3], "y": [1.0, 3.0, None]})
    values, _ = baseline_predictions(spec, train, pd.DataFrame({"x": [9]}))
    assert values.tolist() == [5.0]  # mean 2 clipped to the target's min


def test_class_prior_in_spec_class_order() -> None:
    spec = spec_for("multiclass", "log_loss")
    train = pd.DataFrame({"x": range(5), "y": ["c", "c", "c", "a", "a"]})  # b never seen
    labels, proba = baseline_predictions(spec, train, pd.DataFrame({"x": range(4)}))
    assert baseline_name(spec) == "class prior"
    assert labels.tolist() == ["c"] * 4
    np.testing.assert_allclose(proba, np.tile([0.4, 0.0, 0.6], (4, 1)))


def test_class_prior_scores_like_a_model() -> None:
    spec = spec_for("binary", "roc_auc")
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"x": rng.normal(size=300), "y": rng.choice(["no", "yes"], 300)})
    test = pd.DataFrame({"x": rng.normal(size=200), "y": rng.choice(["no", "yes"], 200)})
    labels, proba = baseline_predictions(spec, train, test)
    scores = score_predictions(spec, test["y"], labels, proba)
    assert scores["roc_auc"] == pytest.approx(0.5)  # constant scores rank nothing
    assert proba.shape == (200, 2) and np.allclose(proba.sum(axis=1), 1)


def test_forecast_baseline_is_the_seasonal_naive_column() -> None:
    spec = model_spec(use_case_specs()["m5_sales"])
    column = naive_column(spec)
    assert column == "lag_7" and baseline_name(spec) == "seasonal naive"
    train = pd.DataFrame({"sales": [2.0, 4.0, 6.0]})
    test = pd.DataFrame({column: [1.0, np.nan, 7.0]})
    values, proba = baseline_predictions(spec, train, test)
    assert proba is None
    assert values.tolist() == [1.0, 4.0, 7.0]  # no lag yet: the training mean
    without, _ = baseline_predictions(spec, train, pd.DataFrame({"x": [1, 2]}))
    assert without.tolist() == [4.0, 4.0]


def test_no_labelled_training_rows_is_an_error() -> None:
    spec = spec_for("regression", "rmse")
    with pytest.raises(ValueError, match="no labelled training rows"):
        baseline_predictions(spec, pd.DataFrame({"y": [None, None]}), pd.DataFrame({"x": [1]}))


def test_bootstrap_of_a_forecast_against_its_seasonal_naive_baseline() -> None:
    spec = model_spec(use_case_specs()["m5_sales"])
    rng = np.random.default_rng(2)
    n = 40 * 28
    sales = rng.poisson(5, n).astype(float)
    rows = pd.DataFrame(
        {
            "id": np.repeat([f"s{i}" for i in range(40)], 28),
            "lag_7": np.clip(sales + rng.normal(0, 3, n), 0, None),
            "sales": sales,
        }
    )
    baseline = baseline_predictions(spec, rows, rows)
    good = (np.clip(sales + rng.normal(0, 1, n), 0, None), None)
    result = bootstrap_improvement(spec, rows["sales"], good, baseline, rows, n=200)
    assert result.metric == "rmsse" and result.resampled == "series"
    assert result.score_b == pytest.approx(1.0) and result.low > 0
    with pytest.raises(ValueError, match="needs the scored rows"):
        bootstrap_improvement(spec, rows["sales"], good, baseline)


def test_bootstrap_of_a_classifier_against_the_class_prior() -> None:
    spec = spec_for("binary", "log_loss")
    rng = np.random.default_rng(4)
    y = pd.Series(rng.choice(["no", "yes"], 600))
    informed = np.where(y == "yes", 0.8, 0.2)
    proba = np.column_stack([1 - informed, informed])
    model = (np.where(informed > 0.5, "yes", "no"), proba)
    prior = baseline_predictions(spec, pd.DataFrame({"y": y}), pd.DataFrame(index=y.index))
    result = bootstrap_improvement(spec, y, model, prior, n=200)
    assert result.score_a < result.score_b and result.low > 0
    auc = bootstrap_improvement(spec, y, model, prior, metric="roc_auc", n=200)
    assert auc.score_b == pytest.approx(0.5) and auc.low > 0
