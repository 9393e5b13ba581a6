"""The Optuna search: one conditional space over all of a spec's model families.

The objective is the cross-validated primary metric; each fold reports its running mean so the
median pruner can stop a trial that is already worse than the others, and CatBoost stops
early inside each fold. Every trial is a nested MLflow run under the tuning run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlops_assets.features.pipeline import model_input
from mlops_assets.metrics import direction
from mlops_assets.specs.model import ModelFamilySpec, ParamSpec, UseCaseSpec
from mlops_assets.training.evaluation import score_predictions
from mlops_assets.training.families import build_pipeline, fit_pipeline, predict_frame


@dataclass
class TuningBudget:
    """How much searching one run may do."""

    n_trials: int
    timeout_s: float | None
    cv_folds: int
    seed: int
    pruner_startup_trials: int
    early_stopping_rounds: int


@dataclass
class TuningResult:
    """The best trial, refit on all training rows."""

    family: str
    params: dict[str, Any]
    cv_score: float
    pipeline: Any
    trials_complete: int
    trials_pruned: int
    trials_failed: int
    study_name: str
    trial_scores: list[float] = field(default_factory=list)


def suggest(trial: Any, name: str, space: ParamSpec) -> Any:
    """One hyperparameter from its spec."""
    if space.type == "categorical":
        return trial.suggest_categorical(name, space.choices)
    if space.type == "int":
        return trial.suggest_int(name, int(space.low), int(space.high), log=space.log)
    return trial.suggest_float(name, float(space.low), float(space.high), log=space.log)


def suggest_params(trial: Any, model: ModelFamilySpec) -> dict[str, Any]:
    """The family's parameters; names are prefixed so each family has its own dimensions."""
    params = dict(model.fixed)
    for name, space in model.search_space.items():
        params[name] = suggest(trial, f"{model.family}.{name}", space)
    return params


def cv_folds(spec: UseCaseSpec, X: pd.DataFrame, y: pd.Series, folds: int, seed: int):  # noqa: N803
    """Fold indices: stratified for classifiers, shuffled K-fold otherwise."""
    from sklearn.model_selection import KFold, StratifiedKFold

    if spec.is_classification:
        return list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(X, y))
    return list(KFold(folds, shuffle=True, random_state=seed).split(X))


def make_objective(
    spec: UseCaseSpec,
    X: pd.DataFrame,  # noqa: N803
    y: pd.Series,
    budget: TuningBudget,
    on_trial: Callable[[Any, str, dict[str, Any], dict[str, float], str], None],
) -> Callable[[Any], float]:
    """The Optuna objective over all families of the spec."""
    import optuna

    families = {m.family: m for m in spec.models}
    splits = cv_folds(spec, X, y, budget.cv_folds, budget.seed)

    def objective(trial: optuna.Trial) -> float:
        family = trial.suggest_categorical("family", list(families))
        params = suggest_params(trial, families[family])
        fold_scores: list[float] = []
        best_iterations: list[int] = []
        state = "complete"
        try:
            for step, (train_idx, valid_idx) in enumerate(splits):
                pipeline = build_pipeline(spec, family, params, budget.seed)
                best = fit_pipeline(
                    pipeline,
                    X.iloc[train_idx],
                    y.iloc[train_idx],
                    budget.early_stopping_rounds,
                    budget.seed,
                )
                if best is not None:
                    best_iterations.append(best)
                pred, proba = predict_frame(pipeline, X.iloc[valid_idx], spec)
                score = score_predictions(spec, y.iloc[valid_idx], pred, proba)
                fold_scores.append(score[spec.primary_metric])
                trial.report(float(np.mean(fold_scores)), step)
                if trial.should_prune():
                    state = "pruned"
                    raise optuna.TrialPruned(f"fold {step}: {np.mean(fold_scores):.4f}")
        except optuna.TrialPruned:
            raise
        except Exception:
            state = "failed"
            raise
        finally:
            if best_iterations:
                trial.set_user_attr("best_iterations", int(np.mean(best_iterations)))
            metrics = (
                {f"cv_{spec.primary_metric}": float(np.mean(fold_scores))} if fold_scores else {}
            )
            on_trial(trial, family, params, metrics, state)
        return float(np.mean(fold_scores))

    return objective


def refit_params(family: str, params: dict[str, Any], user_attrs: dict[str, Any]) -> dict[str, Any]:
    """Parameters for the final fit: CatBoost runs the iterations early stopping chose."""
    params = dict(params)
    if family == "catboost" and "best_iterations" in user_attrs:
        params["iterations"] = max(10, int(user_attrs["best_iterations"]))
    return params


def run_study(
    spec: UseCaseSpec,
    train: pd.DataFrame,
    budget: TuningBudget,
    storage_url: str | None,
    study_name: str,
    on_trial: Callable[[Any, str, dict[str, Any], dict[str, float], str], None],
    log: Callable[[str], None],
) -> TuningResult:
    """Search, then refit the best trial's pipeline on all of ``train``."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    X = model_input(train, spec)  # noqa: N806
    y = train[spec.target.name]
    if spec.is_classification:
        y = y.astype(str)
    study = optuna.create_study(
        study_name=study_name,
        storage=storage_url,
        load_if_exists=True,
        direction=direction(spec.primary_metric),
        sampler=optuna.samplers.TPESampler(seed=budget.seed),
        pruner=optuna.pruners.MedianPruner(
            n_startup_trials=budget.pruner_startup_trials, n_warmup_steps=0
        ),
    )
    done_before = _count(study, optuna.trial.TrialState.COMPLETE)
    remaining = max(0, budget.n_trials - done_before)
    if done_before:
        log(f"resuming study {study_name}: {done_before} trials already complete")
    started = time.monotonic()

    def progress(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        try:
            best = f"{study.best_value:.4f}"
        except ValueError:
            best = "n/a"
        value = "pruned" if trial.state.name == "PRUNED" else trial.value
        log(
            f"trial {trial.number + 1}/{budget.n_trials + done_before}: "
            f"{trial.params.get('family')} {spec.primary_metric}={value} best so far={best} "
            f"({time.monotonic() - started:.0f}s)"
        )

    objective = make_objective(spec, X, y, budget, on_trial)
    if remaining:
        study.optimize(
            objective,
            n_trials=remaining,
            timeout=budget.timeout_s,
            callbacks=[progress],
            catch=(ValueError, ArithmeticError),
        )
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not completed:
        raise RuntimeError(f"{spec.name}: no Optuna trial completed in study {study_name}")
    best = study.best_trial
    family = best.params["family"]
    model_spec = next(m for m in spec.models if m.family == family)
    params = dict(model_spec.fixed)
    prefix = f"{family}."
    params.update({k[len(prefix) :]: v for k, v in best.params.items() if k.startswith(prefix)})
    params = refit_params(family, params, best.user_attrs)
    pipeline = build_pipeline(spec, family, params, budget.seed)
    if family == "catboost":
        pipeline.fit(X, y)
    else:
        fit_pipeline(pipeline, X, y, budget.early_stopping_rounds, budget.seed)
    return TuningResult(
        family=family,
        params=params,
        cv_score=float(best.value),
        pipeline=pipeline,
        trials_complete=len(completed),
        trials_pruned=_count(study, optuna.trial.TrialState.PRUNED),
        trials_failed=_count(study, optuna.trial.TrialState.FAIL),
        study_name=study_name,
        trial_scores=[float(t.value) for t in completed],
    )


def _count(study: Any, state: Any) -> int:
    return sum(1 for t in study.trials if t.state == state)
