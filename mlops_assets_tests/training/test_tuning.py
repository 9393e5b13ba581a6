"""The Optuna search over model families: pruning prunes, the best pipeline is refit.

Each family's first trial is its library's defaults, so tuning never ends worse (in
cross-validation) than an untuned CatBoost or HistGradientBoosting; CatBoost's automatic
learning rate, which it only chooses when neither ``learning_rate`` nor ``l2_leaf_reg`` is
passed, is a dimension of its own.
"""

import datetime as dt
import time

import numpy as np
import pandas as pd
import pytest

from mlops_assets.features.cleaning import clean_frame
from mlops_assets.features.pipeline import model_input
from mlops_assets.generators import get_generator
from mlops_assets.metrics import direction, improvement
from mlops_assets.specs import use_case_specs
from mlops_assets.specs.catalog import parse_spec
from mlops_assets.training.families import build_pipeline, fit_pipeline, predict_frame
from mlops_assets.training.tuning import (
    TuningBudget,
    default_trial,
    defaults_outside_space,
    enqueue_library_defaults,
    estimator_params,
    refit_params,
    run_study,
)


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


def test_a_budget_too_small_for_one_trial_still_gives_a_model_and_stops(spec, train) -> None:
    """The deadline stops the running fit; with no trial complete the cut one is kept, and the
    search starts nothing more (Optuna's own ``timeout`` would have started none at all)."""
    budget = TuningBudget(5, 1e-3, 3, 1, 10, 20)
    states: list[str] = []
    messages: list[str] = []
    started = time.monotonic()
    result = run_study(
        spec, train, budget, None, "late", lambda *a: states.append(a[-1]), messages.append
    )
    assert time.monotonic() - started < 60
    assert states == ["complete"] and result.trials_complete == 1 and result.trials_cut == 1
    assert any("search stopped at its deadline" in m for m in messages)
    predictions, _ = predict_frame(result.pipeline, model_input(train.head(5), spec), spec)
    assert np.isfinite(predictions).all()


def test_a_trial_cut_by_the_deadline_after_one_completed_is_pruned(spec, train, tmp_path) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    run_study(
        spec, train, TuningBudget(1, None, 3, 1, 10, 20), storage, "cut", *[lambda *a: None] * 2
    )
    states: list[str] = []
    late = TuningBudget(4, 1e-3, 3, 1, 10, 20)
    result = run_study(spec, train, late, storage, "cut", lambda *a: states.append(a[-1]), print)
    assert states == ["pruned"]
    assert (result.trials_complete, result.trials_pruned, result.trials_cut) == (1, 1, 0)


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


# ---------------------------------------------------------------- library defaults first


def small_spec(models: list[dict], task: str = "regression") -> object:
    return parse_spec(
        {
            "name": "small",
            "task": task,
            "target": {"name": "y"},
            "features": [
                {"name": "x1", "type": "numeric"},
                {"name": "x2", "type": "numeric"},
                {"name": "c", "type": "categorical", "closed": False},
            ],
            "primary_metric": "rmse",
            "partitions": {"start_date": "2024-01-01"},
            "models": models,
        }
    )


SMALL_MODELS = [
    {
        "family": "catboost",
        "search_space": {
            "depth": {"type": "int", "low": 3, "high": 8},
            "learning_rate": {"type": "float", "low": 0.05, "high": 0.3, "log": True},
            "l2_leaf_reg": {"type": "float", "low": 1, "high": 10, "log": True},
        },
        "fixed": {"iterations": 60},
    },
    {
        "family": "hist_gradient_boosting",
        "search_space": {
            "learning_rate": {"type": "float", "low": 0.03, "high": 0.3, "log": True},
            "max_leaf_nodes": {"type": "int", "low": 15, "high": 63},
            "l2_regularization": {"type": "float", "low": 1e-6, "high": 1.0, "log": True},
        },
        "fixed": {"max_iter": 60},
    },
    {"family": "ridge", "search_space": {"alpha": {"type": "float", "low": 0.001, "high": 100}}},
]


@pytest.fixture(scope="module")
def small_train() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 240
    frame = pd.DataFrame(
        {"x1": rng.normal(size=n), "x2": rng.normal(size=n), "c": rng.choice(list("abc"), n)}
    )
    frame["y"] = 3 * frame["x1"] - frame["x2"] ** 2 + (frame["c"] == "a") + rng.normal(0, 1, n)
    return frame


def test_default_trials_take_library_defaults_or_the_nearest_bound() -> None:
    spec = small_spec(SMALL_MODELS)
    catboost, hgb, ridge = (default_trial(spec, m) for m in spec.models)
    assert catboost == (
        {"family": "catboost", "catboost.auto_learning_rate": True, "catboost.depth": 6},
        [],
    )
    params, notes = hgb
    assert params == {
        "family": "hist_gradient_boosting",
        "hist_gradient_boosting.learning_rate": 0.1,
        "hist_gradient_boosting.max_leaf_nodes": 31,
        "hist_gradient_boosting.l2_regularization": 1e-6,
    }
    assert notes == [
        "hist_gradient_boosting.l2_regularization: library default 0.0 is outside [1e-06, 1]; "
        "the defaults trial uses 1e-06"
    ]
    assert ridge == ({"family": "ridge", "ridge.alpha": 1.0}, [])


def test_defaults_outside_space_lists_each_excluded_default() -> None:
    spec = small_spec(
        [
            {
                "family": "hist_gradient_boosting",
                "search_space": {
                    "learning_rate": {"type": "float", "low": 0.2, "high": 0.3},
                    "min_samples_leaf": {"type": "int", "low": 1, "high": 10},
                },
            },
            {
                "family": "random_forest",
                "search_space": {
                    "max_depth": {"type": "int", "low": 4, "high": 12},
                    "max_features": {"type": "categorical", "choices": [0.3, 0.5]},
                },
            },
            {
                "family": "ridge",
                "search_space": {"alpha": {"type": "float", "low": 0.1, "high": 9}},
            },
        ]
    )
    outside = defaults_outside_space(spec)
    assert outside == [
        "hist_gradient_boosting.learning_rate: library default 0.1 is outside [0.2, 0.3]; "
        "the defaults trial uses 0.2",
        "hist_gradient_boosting.min_samples_leaf: library default 20 is outside [1, 10]; "
        "the defaults trial uses 10",
        "random_forest.max_depth: library default None is outside [4, 12]; "
        "the defaults trial uses 12",
        "random_forest.max_features: library default 1.0 is outside the choices [0.3, 0.5]; "
        "the defaults trial uses 0.5",
    ]


@pytest.mark.parametrize("name", sorted(use_case_specs()))
def test_defaults_outside_space_reads_every_bundled_spec(name) -> None:
    spec = use_case_specs()[name]
    for line in defaults_outside_space(spec):
        assert line.split(".", 1)[0] in {m.family for m in spec.models}
        assert "outside" in line or "no known library default" in line


def test_catboost_with_a_fixed_l2_has_no_automatic_learning_rate() -> None:
    model = {
        "family": "catboost",
        "search_space": {"learning_rate": {"type": "float", "low": 0.05, "high": 0.3}},
        "fixed": {"l2_leaf_reg": 5},
    }
    params, notes = default_trial(small_spec([model]), small_spec([model]).models[0])
    assert "catboost.auto_learning_rate" not in params
    assert "automatic learning rate is off" in notes[0]


def test_enqueue_library_defaults_only_once() -> None:
    import optuna

    spec = small_spec(SMALL_MODELS)
    study = optuna.create_study()
    messages: list[str] = []
    assert enqueue_library_defaults(study, spec, messages.append) == [
        "catboost",
        "hist_gradient_boosting",
        "ridge",
    ]
    assert any("first catboost trial: library defaults" in m for m in messages)
    assert any("l2_regularization: library default 0.0 is outside" in m for m in messages)
    assert enqueue_library_defaults(study, spec, messages.append) == []  # waiting already
    assert len(study.trials) == 3
    limited = optuna.create_study()
    assert enqueue_library_defaults(limited, spec, messages.append, limit=1) == ["catboost"]


def test_first_trials_are_the_library_defaults_and_are_not_enqueued_again(
    small_train, tmp_path
) -> None:
    import optuna

    spec = small_spec(SMALL_MODELS)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    budget = TuningBudget(4, None, 2, 1, pruner_startup_trials=0, early_stopping_rounds=10)
    result = run_study(spec, small_train, budget, storage, "defaults", lambda *a: None, str)
    trials = optuna.load_study(study_name="defaults", storage=storage).trials
    assert [t.user_attrs.get("library_defaults") for t in trials[:3]] == [
        "catboost",
        "hist_gradient_boosting",
        "ridge",
    ]
    assert trials[0].params == {
        "family": "catboost",
        "catboost.auto_learning_rate": True,
        "catboost.depth": 6,
    }
    # CatBoost chose its own rate: passing l2_leaf_reg would have fixed it at 0.03.
    assert trials[0].user_attrs["catboost_learning_rate"] != pytest.approx(0.03)
    assert set(result.default_scores) == {"catboost", "hist_gradient_boosting", "ridge"}
    assert result.cv_score <= min(result.default_scores.values())
    bigger = TuningBudget(6, None, 2, 1, pruner_startup_trials=0, early_stopping_rounds=10)
    run_study(spec, small_train, bigger, storage, "defaults", lambda *a: None, str)
    again = optuna.load_study(study_name="defaults", storage=storage).trials
    assert len(again) > len(trials)  # the resumed study ran trials, none of them defaults
    assert sum(bool(t.user_attrs.get("library_defaults")) for t in again) == 3


def test_refit_pins_catboost_s_own_rate_and_hgb_s_stopping_point() -> None:
    attrs = {"best_iterations": 137, "catboost_learning_rate": 0.081}
    assert refit_params("catboost", {"depth": 6}, attrs) == {
        "depth": 6,
        "iterations": 137,
        "learning_rate": 0.081,
    }
    assert refit_params("catboost", {"learning_rate": 0.2}, attrs)["learning_rate"] == 0.2
    assert refit_params("hist_gradient_boosting", {}, attrs) == {
        "max_iter": 137,
        "early_stopping": False,
    }


def test_estimator_params_drop_the_automatic_flag() -> None:
    model = small_spec(SMALL_MODELS).models[0]
    params = estimator_params(
        model, {"family": "catboost", "catboost.auto_learning_rate": True, "catboost.depth": 5}
    )
    assert params == {"iterations": 60, "depth": 5}


def test_a_study_database_created_by_another_process_at_once_is_opened(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes opening a fresh SQLite study database at once both stamp its schema; the
    loser's IntegrityError (seen in CI: a refresh died of it) is retried, and opens it."""
    import optuna
    from sqlalchemy.exc import IntegrityError

    from mlops_assets.training import tuning

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    real = optuna.storages.RDBStorage
    calls: list[str] = []

    def loses_the_race_once(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 1:
            real(*args, **kwargs)  # the other process creates the schema...
            raise IntegrityError("INSERT INTO alembic_version", {}, Exception("UNIQUE"))
        return real(*args, **kwargs)

    monkeypatch.setattr(tuning, "STORAGE_ATTEMPTS", 2)
    monkeypatch.setattr(optuna.storages, "RDBStorage", loses_the_race_once)
    monkeypatch.setattr(tuning.time, "sleep", lambda s: None)
    storage = tuning.study_storage(url)
    assert calls == [url, url] and storage.get_all_studies() == []

    calls.clear()
    monkeypatch.setattr(tuning, "STORAGE_ATTEMPTS", 1)
    with pytest.raises(IntegrityError):  # retries are bounded
        tuning.study_storage(url)
