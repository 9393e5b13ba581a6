"""Candidate model families, each a full pipeline: group imputers, feature selection, estimator.

Every family starts with the same preprocessing (:mod:`mlops_assets.features.pipeline`), so the
logged pipeline takes the raw model input a served record also becomes.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import pandas as pd

from mlops_assets.features import pipeline as preprocessing
from mlops_assets.specs.model import UseCaseSpec

_thread_budget: int | None = None

CATBOOST_ITERATIONS = 2000
"""CatBoost's iteration cap when the spec does not fix one: early stopping, not the cap, decides."""
HGB_MAX_ITER = 1000
"""HistGradientBoosting's iteration cap when the spec does not fix one (early stopping decides)."""
HGB_STOPPING = {"early_stopping": True, "validation_fraction": 0.1, "n_iter_no_change": 15}
"""HistGradientBoosting's built-in early stopping, on a tenth of each fit's rows."""
CATBOOST_DEFAULTS: dict[str, Any] = {
    "depth": 6,
    "l2_leaf_reg": 3.0,
    "learning_rate": None,
    "iterations": 1000,
    "border_count": 254,
    "random_strength": 1.0,
    "bagging_temperature": 1.0,
    "min_data_in_leaf": 1,
}
"""CatBoost's documented defaults; ``learning_rate`` ``None``: CatBoost chooses it.

CatBoost's ``get_params()`` lists only the parameters a caller set, so unlike scikit-learn's
estimators its defaults cannot be read from a default instance; these are the values of its
"Training parameters" reference. CatBoost picks the learning rate itself (from the iteration
count, the data size and whether there is an evaluation set) only when neither
``learning_rate`` nor ``l2_leaf_reg`` is given: passing ``l2_leaf_reg=3`` explicitly silently
falls back to a learning rate of 0.03.
"""


def set_thread_budget(threads: int | None) -> None:
    """Cap the threads each model fit uses in this process (``None``: every core).

    Optuna worker processes share the machine: each takes its share of the cores, or four
    workers each fitting CatBoost on every core would oversubscribe the CPU several times over.
    """
    global _thread_budget
    _thread_budget = threads


def fit_threads() -> int:
    """Threads one model fit may use in this process."""
    return _thread_budget or max(1, (os.cpu_count() or 1))


def _numeric_and_categorical(spec: UseCaseSpec) -> tuple[list[str], list[str]]:
    numeric = [c.name for c in spec.features if c.type in {"numeric", "integer"}]
    categorical = [c.name for c in spec.features if c.type == "categorical"]
    return numeric, categorical


def _estimator(spec: UseCaseSpec, family: str, params: dict[str, Any], seed: int) -> Any:
    classify = spec.is_classification
    if family == "catboost":
        from catboost import CatBoostClassifier, CatBoostRegressor

        _, categorical = _numeric_and_categorical(spec)
        common = dict(
            cat_features=categorical,
            verbose=0,
            random_seed=seed,
            thread_count=fit_threads(),
            allow_writing_files=False,
        )
        params = {"iterations": CATBOOST_ITERATIONS, **params}
        if classify:
            loss = "MultiClass" if spec.task == "multiclass" else "Logloss"
            return CatBoostClassifier(loss_function=loss, **common, **params)
        return CatBoostRegressor(loss_function="RMSE", **common, **params)
    if family == "hist_gradient_boosting":
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        cls = HistGradientBoostingClassifier if classify else HistGradientBoostingRegressor
        return cls(random_state=seed, **{"max_iter": HGB_MAX_ITER, **HGB_STOPPING, **params})
    if family == "random_forest":
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        cls = RandomForestClassifier if classify else RandomForestRegressor
        return cls(random_state=seed, n_jobs=fit_threads(), **params)
    if family == "ridge":
        from sklearn.linear_model import Ridge

        return Ridge(**params)
    if family == "logistic_regression":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(max_iter=1000, **params)
    raise ValueError(f"unknown model family {family!r}")


def library_defaults(spec: UseCaseSpec, family: str) -> dict[str, Any]:
    """The hyperparameters a family's library uses when none is given.

    Read from a default estimator at runtime (``get_params()``) where the library allows it, so
    a library upgrade that changes a default is followed; CatBoost's come from
    :data:`CATBOOST_DEFAULTS` (see there why). The tuner's first trial of each family starts
    from these, so a search never ends worse than the untuned library.

    Raises:
        ValueError: The family is unknown.
    """
    if family == "catboost":
        return dict(CATBOOST_DEFAULTS)
    classify = spec.is_classification
    if family == "hist_gradient_boosting":
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        cls: Any = HistGradientBoostingClassifier if classify else HistGradientBoostingRegressor
    elif family == "random_forest":
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        cls = RandomForestClassifier if classify else RandomForestRegressor
    elif family == "ridge":
        from sklearn.linear_model import Ridge

        cls = Ridge
    elif family == "logistic_regression":
        from sklearn.linear_model import LogisticRegression

        cls = LogisticRegression
    else:
        raise ValueError(f"unknown model family {family!r}")
    return cls().get_params()


def _encoder(spec: UseCaseSpec, family: str) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric, categorical = _numeric_and_categorical(spec)
    linear = family in {"ridge", "logistic_regression"}
    numeric_steps = [SimpleImputer(strategy="median", add_indicator=linear)]
    if linear:
        numeric_steps.append(StandardScaler())
    return ColumnTransformer(
        [
            ("numeric", make_pipeline(*numeric_steps), numeric),
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False, min_frequency=5),
                categorical,
            ),
        ],
        verbose_feature_names_out=False,
    )


def build_pipeline(spec: UseCaseSpec, family: str, params: dict[str, Any], seed: int = 42) -> Any:
    """The full model pipeline of one family with the given hyperparameters."""
    from sklearn.pipeline import Pipeline

    numeric, categorical = _numeric_and_categorical(spec)
    steps: list[tuple[str, Any]] = [
        ("impute_groups", preprocessing.GroupImputer(preprocessing.group_imputers(spec))),
    ]
    if preprocessing.group_stat_rules(spec):  # older pipelines have no such step: none needed
        steps.append(("group_stats", preprocessing.GroupStat(preprocessing.group_stat_rules(spec))))
    steps += [
        ("select", preprocessing.FeatureSelector(numeric + categorical, categorical)),
    ]
    if family != "catboost":
        steps.append(("encode", _encoder(spec, family)))
    steps.append(("model", _estimator(spec, family, params, seed)))
    return Pipeline(steps)


class StopAtDeadline:
    """A CatBoost callback that ends the boosting once the wall clock reaches ``deadline``.

    A tuning budget in seconds has to hold while a fit is running: on millions of rows one
    CatBoost fit alone can outlast it, and Optuna's ``timeout`` only stops it starting trials.
    The booster keeps the trees built so far (the best of them when it has an evaluation set),
    so a stopped fit is a smaller model, not a broken one. ``time.time()``, not a monotonic
    clock: the deadline is shared with Optuna worker processes.
    """

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.stopped = False

    def after_iteration(self, info: Any) -> bool:
        """CatBoost's hook: ``False`` stops the boosting."""
        if time.time() < self.deadline:
            return True
        self.stopped = True
        return False


def is_catboost(pipeline: Any) -> bool:
    """Whether a pipeline's estimator is CatBoost's (which takes a callback and no encoder)."""
    return type(pipeline.named_steps["model"]).__name__.startswith("CatBoost")


HGB_CHUNK = 25
"""Trees HistGradientBoosting adds per call when a fit has a deadline (warm start)."""


def refit_pipeline(
    pipeline: Any,
    X: pd.DataFrame,  # noqa: N803
    y: pd.Series,
    stop: StopAtDeadline | None = None,
) -> None:
    """Fit on all rows, without an evaluation set, the boosting ending at ``stop``'s deadline.

    The refit of the best trial: CatBoost gets no evaluation set (it runs the iterations the
    folds chose), HistGradientBoosting stops early itself unless the folds chose a count.

    CatBoost takes the deadline as a callback; HistGradientBoosting grows in chunks
    (:func:`_grow_until`).
    """
    if stop is not None and is_catboost(pipeline):
        pipeline.fit(X, y, model__callbacks=[stop])
    elif stop is not None and is_hist_gradient_boosting(pipeline):
        _grow_until(pipeline, X, y, stop)
    else:
        pipeline.fit(X, y)


def is_hist_gradient_boosting(pipeline: Any) -> bool:
    """Whether a pipeline's estimator is scikit-learn's HistGradientBoosting."""
    return type(pipeline.named_steps["model"]).__name__.startswith("HistGradientBoosting")


def fitted_iterations(pipeline: Any) -> int | None:
    """The trees a fitted boosting pipeline holds (``None`` for other families)."""
    model = pipeline.named_steps["model"]
    if is_catboost(pipeline):
        return int(model.tree_count_)
    return int(model.n_iter_) if is_hist_gradient_boosting(pipeline) else None


def _grow_until(pipeline: Any, X: pd.DataFrame, y: pd.Series, stop: StopAtDeadline) -> None:  # noqa: N803
    """Fit a HistGradientBoosting pipeline by warm start, :data:`HGB_CHUNK` trees a call.

    The library has no hook inside a fit, so a deadline is checked between calls. Each call
    adds trees to the same ensemble on inputs transformed once, and its own early stopping
    keeps its validation split and score history across calls, so without a deadline the
    result is the model one fit makes (a test holds them equal, stopping early or not).
    """
    model = pipeline.named_steps["model"]
    target = int(model.max_iter)
    inputs = pipeline[:-1].fit_transform(X, y)
    model.set_params(warm_start=True)
    grown = 0
    try:
        while grown < target:
            grown = min(target, grown + HGB_CHUNK)
            model.set_params(max_iter=grown)
            model.fit(inputs, y)
            if model.n_iter_ < grown or _stopped_early(model):
                break
            if grown < target and not stop.after_iteration(None):
                break
    finally:
        model.set_params(warm_start=False, max_iter=target)


def _stopped_early(model: Any) -> bool:
    """Whether HistGradientBoosting's early stopping ended a fit on its last iteration.

    A fit that stops exactly at a chunk's end looks like one that ran the chunk; the next call
    would add one more tree before stopping again. scikit-learn's own test (``_should_stop``,
    the method its fit loop calls after each iteration) tells them apart.
    """
    if not model.do_early_stopping_:
        return False
    scores = model.validation_score_ if model._use_validation_data else model.train_score_
    return bool(model._should_stop(list(scores)))


def fit_pipeline(
    pipeline: Any,
    X: pd.DataFrame,  # noqa: N803 (sklearn convention)
    y: pd.Series,
    early_stopping_rounds: int,
    seed: int = 42,
    stop: StopAtDeadline | None = None,
) -> int | None:
    """Fit in place; CatBoost stops early on a held-out tenth of ``X``, HGB on its own tenth.

    Returns the iteration count early stopping chose (CatBoost's best iteration, the
    iterations HistGradientBoosting ran before it stopped), so that a refit on all rows can use
    it without a validation set; ``None`` for other families or when nothing stopped early.
    A CatBoost or HistGradientBoosting fit also ends at ``stop``'s deadline
    (:class:`StopAtDeadline`, :func:`_grow_until`); random forest and the linear models have no
    hook inside a fit, so their callers check the clock between fits.
    """
    model = pipeline.named_steps["model"]
    if stop is not None and is_hist_gradient_boosting(pipeline):
        _grow_until(pipeline, X, y, stop)
        return int(model.n_iter_) if model.do_early_stopping_ else None
    if is_catboost(pipeline) and len(X) >= 50:
        rng = np.random.default_rng(seed)
        holdout = rng.random(len(X)) < 0.1
        preprocess = pipeline[:-1]
        train_X = preprocess.fit_transform(X[~holdout], y[~holdout])
        valid_X = preprocess.transform(X[holdout])
        model.fit(
            train_X,
            y[~holdout],
            eval_set=(valid_X, y[holdout]),
            early_stopping_rounds=early_stopping_rounds,
            use_best_model=True,
            callbacks=[stop] if stop else None,
        )
        return int(model.get_best_iteration() or 0) + 1
    pipeline.fit(X, y)
    if is_hist_gradient_boosting(pipeline) and model.do_early_stopping_:
        return int(model.n_iter_)
    return None


def clip_to_target(values: np.ndarray, spec: UseCaseSpec) -> np.ndarray:
    """Numeric predictions clipped into the target's declared range (``target.min``/``max``).

    A linear model extrapolates past what the target can be (negative sales); an answer outside
    the range is wrong for certain, and a negative one makes the Tweedie deviance meaningless.
    """
    low, high = spec.target.min, spec.target.max
    if low is None and high is None:
        return values
    return np.clip(values, -np.inf if low is None else low, np.inf if high is None else high)


def predict_frame(pipeline: Any, X: pd.DataFrame, spec: UseCaseSpec) -> tuple[np.ndarray, Any]:
    """Predictions, and class probabilities in ``spec.target.classes`` order for classifiers.

    Regression and forecast values are clipped into the target's range (:func:`clip_to_target`):
    this is the one prediction path of training metrics, monitoring and serving.
    """
    if not spec.is_classification:
        return clip_to_target(np.asarray(pipeline.predict(X), dtype=float), spec), None
    fitted = [str(c) for c in pipeline.classes_]
    return ordered_probabilities(pipeline.predict_proba(X), fitted, spec)


def ordered_probabilities(
    proba: np.ndarray, fitted: list[str], spec: UseCaseSpec
) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities in ``spec.target.classes`` order from a classifier's own.

    ``fitted``: the classifier's classes, in the order of ``proba``'s columns. Shared by the
    vectorised path and the compiled one (:mod:`mlops_assets.training.compiled`).
    """
    classes = list(spec.target.classes or fitted)
    ordered = np.zeros((len(proba), len(classes)))
    for index, name in enumerate(fitted):
        ordered[:, classes.index(name)] = proba[:, index]
    ordered = ordered / ordered.sum(axis=1, keepdims=True)
    labels = np.asarray(classes, dtype=object)[ordered.argmax(axis=1)]
    return labels, ordered
