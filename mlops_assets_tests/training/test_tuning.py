"""The Optuna search over model families: pruning prunes, the best pipeline is refit."""

import datetime as dt

import pandas as pd
import pytest

from mlops_assets.features.cleaning import clean_frame
from mlops_assets.features.pipeline import model_input
from mlops_assets.generators import get_generator
from mlops_assets.metrics import direction, improvement
from mlops_assets.specs import use_case_specs
from mlops_assets.training.families import build_pipeline, fit_pipeline, predict_frame
from mlops_assets.training.tuning import TuningBudget, run_study


@pytest.fixture(scope="module")
def spec():
    return use_case_specs()["bigmart_sales"]


@pytest.fixture(scope="module")
def train(spec) -> pd.DataFrame:
    generator = get_generator("bigmart_sales")
    frames = [
        clean_frame(generator.generate(400, dt.date(2025, 1, 1) + dt.timedelta(days=i), 5), spec)[0]
        for i in range(3)
    ]
    data = pd.concat(frames, ignore_index=True)
    data["_landed_date"] = "2025-01-01"
    return data


def test_pruning_prunes_and_best_is_refit(spec, train: pd.DataFrame) -> None:
    budget = TuningBudget(
        n_trials=12,
        timeout_s=None,
        cv_folds=3,
        seed=1,
        pruner_startup_trials=2,
        early_stopping_rounds=20,
    )
    seen: list[tuple[int, str, str]] = []
    messages: list[str] = []
    result = run_study(
        spec,
        train,
        budget,
        storage_url=None,
        study_name="test",
        on_trial=lambda trial, family, params, metrics, state: seen.append(
            (trial.number, family, state)
        ),
        log=messages.append,
    )
    assert result.trials_pruned > 0
    assert result.trials_complete + result.trials_pruned + result.trials_failed == 12
    assert len(seen) == 12 and {s for _, _, s in seen} <= {"complete", "pruned", "failed"}
    assert any("trial 12/12" in m and "best so far" in m for m in messages)
    assert result.cv_score == min(result.trial_scores)
    predictions, _ = predict_frame(result.pipeline, model_input(train.head(20), spec), spec)
    assert predictions.shape == (20,)


def test_study_resumes_from_storage(spec, train: pd.DataFrame, tmp_path) -> None:
    """A crashed tuning run resumes its study: completed trials count toward the budget."""
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    budget = TuningBudget(3, None, 2, 1, 10, 20)
    first = run_study(spec, train, budget, storage, "resume", lambda *a: None, lambda m: None)
    messages: list[str] = []
    again = run_study(spec, train, budget, storage, "resume", lambda *a: None, messages.append)
    assert again.trials_complete == first.trials_complete
    assert any("resuming study resume" in m for m in messages)


@pytest.mark.parametrize("family", ["catboost", "hist_gradient_boosting", "ridge", "random_forest"])
def test_every_family_handles_missing_values_and_unseen_groups(spec, train, family) -> None:
    params = {"iterations": 50} if family == "catboost" else {}
    if family == "random_forest":
        params = {"n_estimators": 10}
    pipeline = build_pipeline(spec, family, params)
    X, y = model_input(train, spec), train[spec.target.name]
    fit_pipeline(pipeline, X, y, early_stopping_rounds=10)
    record = X.head(1).copy()
    record["Item_Identifier"] = "ZZZ99"  # an item never seen: the imputer falls back
    record["Item_Weight"] = float("nan")
    record["Outlet_Size"] = float("nan")
    prediction, _ = predict_frame(pipeline, record, spec)
    assert prediction[0] == prediction[0]  # not NaN


def test_metric_directions() -> None:
    assert direction("rmse") == "minimize"
    assert direction("roc_auc") == "maximize"
    assert improvement("rmse", 90, 100) == pytest.approx(0.1)
    assert improvement("roc_auc", 0.9, 0.8) == pytest.approx(0.125)
    assert improvement("log_loss", 0.5, 0.4) < 0
