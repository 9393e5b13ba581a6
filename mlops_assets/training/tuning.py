"""The Optuna search: one conditional space over all of a spec's model families.

The objective is the cross-validated primary metric; each fold reports its running mean so the
median pruner can stop a trial that is already worse than the others, and the boosted families
(CatBoost, HistGradientBoosting) stop early inside each fold. Every trial is a nested MLflow run
under the tuning run.

Never worse than the library: the first trial of each family is its library's defaults
(:func:`enqueue_library_defaults`), and those trials are never pruned, so the search ends at
least as good, in cross-validation, as an untuned CatBoost or HistGradientBoosting would be.

Parallel workers: with ``n_workers > 1`` and a server database (PostgreSQL), that many worker
processes (spawned, so no state is shared but the study) load the same study and take trials
from one shared budget until it is spent; each worker logs its trials to MLflow itself, nested
under the tuning run (tag ``mlflow.parentRunId``). The parent process reports progress from the
study and raises if a worker fails. SQLite and in-memory studies run one worker: SQLite locks
the whole database per write, so workers would mostly wait for each other.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import queue
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlops_assets import names
from mlops_assets.features.forecast import date_column, time_folds
from mlops_assets.features.pipeline import model_input
from mlops_assets.metrics import direction, shown
from mlops_assets.registry.heartbeat import ProcessIdentity
from mlops_assets.specs.model import ModelFamilySpec, ParamSpec, UseCaseSpec
from mlops_assets.training.evaluation import score_predictions
from mlops_assets.training.families import (
    StopAtDeadline,
    build_pipeline,
    fit_pipeline,
    fit_threads,
    fitted_iterations,
    library_defaults,
    predict_frame,
    refit_pipeline,
    set_thread_budget,
)


@dataclass
class TuningBudget:
    """How much searching one run may do."""

    n_trials: int
    timeout_s: float | None
    cv_folds: int
    seed: int
    pruner_startup_trials: int
    early_stopping_rounds: int
    n_workers: int = 1


def budget_for(
    spec: UseCaseSpec,
    n_trials: int | None = None,
    timeout_s: float | None = None,
    cv_folds: int | None = None,
    seed: int | None = None,
    n_workers: int = 1,
) -> TuningBudget:
    """A run's budget: the overrides given, the spec's ``tuning`` defaults for the rest.

    ``timeout_s=0`` (or less) means no time limit: the budget is the trial count alone, the
    same on every machine (what the demo and the tests ask for).
    """
    tuning = spec.tuning
    timeout = timeout_s if timeout_s is not None else tuning.timeout_s
    return TuningBudget(
        n_trials=n_trials or tuning.n_trials,
        timeout_s=timeout if timeout and timeout > 0 else None,
        cv_folds=cv_folds or tuning.cv_folds,
        seed=seed if seed is not None else tuning.seed,
        pruner_startup_trials=tuning.pruner_startup_trials,
        early_stopping_rounds=tuning.early_stopping_rounds,
        n_workers=n_workers,
    )


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
    default_scores: dict[str, float] = field(default_factory=dict)
    """Cross-validated score of each family's library-defaults trial (the ones that completed)."""
    trials_cut: int = 0
    """Trials the deadline cut short (a fit stopped, folds not run) that were kept because no
    trial had completed yet: scored on what they finished."""
    refit_cut: bool = False
    """The deadline stopped the refit's boosting (fewer trees than the search chose)."""


REFIT_SHARE = 0.2
"""Of a time budget, the share kept for the refit on all rows after the search.

``timeout_s`` bounds the whole tuning step: the search stops at the rest of it (a running fit
included, :class:`~mlops_assets.training.families.StopAtDeadline`) and the refit ends at the
budget's end. The refit fits each chosen iteration once on all rows, where a trial fits it once
per fold on fewer rows, so a fifth of the budget fits the iterations of a trial that took about
a fold's share of the search.
"""
MIN_REFIT_S = 10.0
"""The least time a refit gets when the search ran over its share (a trial of few rows)."""
DEADLINE_FOLDS_ATTR = "folds_before_deadline"
"""Trial user attribute: the folds a trial finished before the search deadline stopped it."""
CATCH = (ValueError, ArithmeticError)
"""Trial errors recorded as failed trials; any other error stops the search."""
WORKER_START_TIMEOUT_S = 300.0
"""How long workers wait for each other to start (imports) before searching anyway."""
POLL_S = 1.0
TRIAL_HEARTBEAT_S = 60
"""Optuna's heartbeat of a running trial in database storage; a trial silent for
``TRIAL_GRACE_S`` (its process died, on whatever host) is failed by the next ``optimize``."""
TRIAL_GRACE_S = 180
STORAGE_ATTEMPTS = 3
"""Opening a study database that another process is creating at the same moment is retried."""


def study_storage(url: str | None) -> Any:
    """Optuna storage for a URL: a database with trial heartbeats, or ``None`` (in memory)."""
    if not url:
        return None
    import optuna
    from sqlalchemy.exc import IntegrityError

    for attempt in range(STORAGE_ATTEMPTS):
        try:
            with warnings.catch_warnings():  # the heartbeat is "experimental" in Optuna 5
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    url, heartbeat_interval=TRIAL_HEARTBEAT_S, grace_period=TRIAL_GRACE_S
                )
        except IntegrityError:
            # Two processes creating a fresh database at once both stamp its schema version;
            # the loser's insert fails, and the schema the winner made is there to open.
            if attempt == STORAGE_ATTEMPTS - 1:
                raise
            time.sleep(0.5)
    raise AssertionError("unreachable")


def studies_of(url: str, model_name: str) -> list[str]:
    """The Optuna studies of a registered model (one per data version), oldest first.

    By start time (a study without trials first). A study is named ``<model>-<data version>``
    (:func:`~mlops_assets.training.worker.study_name_for`).
    """
    import optuna

    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return []  # nothing was ever tuned here: do not create the database to say so
    summaries = optuna.get_all_study_summaries(study_storage(url), include_best_trial=False)
    found = [
        (s.study_name, s.datetime_start)
        for s in summaries
        if s.study_name.startswith(f"{model_name}-")
        and "-" not in s.study_name[len(model_name) + 1 :]
    ]
    found.sort(key=lambda pair: (pair[1] is not None, pair[1] or 0, pair[0]))
    return [name for name, _ in found]


def delete_studies(url: str, study_names: list[str]) -> None:
    """Delete Optuna studies with their trials."""
    import optuna

    storage = study_storage(url)
    for name in study_names:
        optuna.delete_study(study_name=name, storage=storage)


def fail_trials_of_dead_processes(url: str | None) -> list[str]:
    """Mark FAIL the RUNNING trials whose process (on this host) is gone; returns them.

    A killed tuning run leaves its trial RUNNING; Optuna's heartbeat fails it only after its
    grace period and only when a study is optimized again. This fails it now (what the reaper
    of dead runs calls). Trials of processes on other hosts are left to the heartbeat.
    """
    if not url:
        return []
    import optuna

    storage = optuna.storages.get_storage(url)
    failed = []
    for study in storage.get_all_studies():
        running = storage.get_all_trials(
            study._study_id, deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)
        )
        for trial in running:
            process = ProcessIdentity.from_dict(trial.user_attrs.get(names.TRIAL_PROCESS_ATTR))
            if process is not None and process.gone():
                storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
                failed.append(f"{study.study_name}#{trial.number}")
    return failed


@dataclass(frozen=True)
class TrialTracking:
    """Where a worker process logs its trials: the MLflow run they nest under."""

    tracking_uri: str
    registry_uri: str
    experiment_id: str
    parent_run_id: str


_worker_tracking: TrialTracking | None = None


def trial_parent_run_id() -> str | None:
    """The MLflow run a trial nests under in a worker process (``None``: the active run)."""
    return _worker_tracking.parent_run_id if _worker_tracking is not None else None


def active_tracking() -> TrialTracking | None:
    """This process's active MLflow run, for workers to nest their trials under."""
    mlflow = sys.modules.get("mlflow")  # not imported: no run can be active
    run = mlflow.active_run() if mlflow is not None else None
    if run is None:
        return None
    return TrialTracking(
        tracking_uri=mlflow.get_tracking_uri(),
        registry_uri=mlflow.get_registry_uri(),
        experiment_id=run.info.experiment_id,
        parent_run_id=run.info.run_id,
    )


def worker_count(
    requested: int, storage_url: str | None, remaining: int, log: Callable[[str], None]
) -> int:
    """Worker processes to start: at most one per remaining trial; one without a server DB."""
    if requested <= 1 or remaining <= 1:
        return 1
    if not storage_url or storage_url.startswith("sqlite"):
        log(
            f"n_workers={requested} needs a server database for the study (PostgreSQL); "
            f"running 1 worker on {'SQLite' if storage_url else 'in-memory storage'}"
        )
        return 1
    return min(requested, remaining)


def suggest(trial: Any, name: str, space: ParamSpec) -> Any:
    """One hyperparameter from its spec."""
    if space.type == "categorical":
        return trial.suggest_categorical(name, space.choices)
    if space.type == "int":
        return trial.suggest_int(name, int(space.low), int(space.high), log=space.log)
    return trial.suggest_float(name, float(space.low), float(space.high), log=space.log)


AUTO_LEARNING_RATE = "auto_learning_rate"
"""CatBoost's extra dimension: ``True`` lets CatBoost choose the learning rate itself."""
CATBOOST_AUTO_OFF = ("learning_rate", "l2_leaf_reg")
"""CatBoost parameters whose presence turns its automatic learning rate off."""
DEFAULTS_ATTR = "library_defaults"
"""User attribute naming the family whose library defaults a trial is."""
LEARNING_RATE_ATTR = "catboost_learning_rate"
"""User attribute: the learning rate CatBoost chose itself in a trial's folds (mean)."""


def has_auto_learning_rate(model: ModelFamilySpec) -> bool:
    """Whether the family's space gets the ``auto_learning_rate`` dimension (CatBoost).

    CatBoost chooses its learning rate from the data size and the iteration count, but only
    when neither ``learning_rate`` nor ``l2_leaf_reg`` is passed (with ``l2_leaf_reg`` it falls
    back to 0.03). A float range cannot express "not given", so a CatBoost space searching
    either of them gets a boolean dimension instead of a sentinel value: ``True`` passes
    neither (CatBoost's own learning rate with its default ``l2_leaf_reg`` of 3), ``False``
    searches both as the spec says. The library-defaults trial takes ``True``; the sampler
    then explores both halves. A spec fixing either parameter has no automatic mode.
    """
    searched = set(CATBOOST_AUTO_OFF) & set(model.search_space)
    fixed = set(CATBOOST_AUTO_OFF) & set(model.fixed)
    return model.family == "catboost" and bool(searched) and not fixed


def suggest_params(trial: Any, model: ModelFamilySpec) -> dict[str, Any]:
    """The family's parameters; names are prefixed so each family has its own dimensions.

    For CatBoost, see :func:`has_auto_learning_rate`: with ``auto_learning_rate`` true, the
    learning rate and ``l2_leaf_reg`` are not suggested and CatBoost picks its own.
    """
    params = dict(model.fixed)
    space = dict(model.search_space)
    if has_auto_learning_rate(model):
        if trial.suggest_categorical(f"{model.family}.{AUTO_LEARNING_RATE}", [True, False]):
            for name in CATBOOST_AUTO_OFF:
                space.pop(name, None)
    for name, dimension in space.items():
        params[name] = suggest(trial, f"{model.family}.{name}", dimension)
    return params


def estimator_params(model: ModelFamilySpec, trial_params: dict[str, Any]) -> dict[str, Any]:
    """The estimator's parameters of a finished trial, from its Optuna ``trial.params``.

    The same as :func:`suggest_params` returned for it: the spec's fixed parameters included,
    the ``auto_learning_rate`` flag (not an estimator parameter) left out.
    """
    prefix = f"{model.family}."
    params = dict(model.fixed)
    for key, value in trial_params.items():
        name = key[len(prefix) :]
        if key.startswith(prefix) and name != AUTO_LEARNING_RATE:
            params[name] = value
    return params


def _in_space(value: Any, space: ParamSpec) -> tuple[Any, bool]:
    """``value`` if the space holds it, else the nearest value it holds; and whether it held it."""
    if space.type == "categorical":
        choices = list(space.choices or [])
        if value in choices:
            return value, True
        numeric = [c for c in choices if isinstance(c, int | float) and not isinstance(c, bool)]
        if isinstance(value, int | float) and not isinstance(value, bool) and numeric:
            return min(numeric, key=lambda c: abs(c - value)), False
        return choices[0], False
    low, high = float(space.low), float(space.high)  # type: ignore[arg-type]
    if value is None:  # "unlimited" (a random forest's max_depth): the top of the range
        nearest: float = high
    elif isinstance(value, bool) or not isinstance(value, int | float):
        return (int(high) if space.type == "int" else high), False
    else:
        nearest = min(max(float(value), low), high)
    inside = value is not None and low <= float(value) <= high
    if space.type == "int":
        return int(round(nearest)), inside and float(value) == int(value)
    return (value if inside else nearest), inside


def default_trial(spec: UseCaseSpec, model: ModelFamilySpec) -> tuple[dict[str, Any], list[str]]:
    """The Optuna parameters of a family's library-defaults trial, and notes on what differs.

    Each search-space parameter takes the library's default when the space holds it, else the
    nearest value it holds (a note says which and by how much); a CatBoost space takes
    ``auto_learning_rate`` (see :func:`has_auto_learning_rate`). Parameters the spec fixes
    stay fixed: they are not part of the search.
    """
    defaults = library_defaults(spec, model.family)
    params: dict[str, Any] = {"family": model.family}
    notes: list[str] = []
    auto = has_auto_learning_rate(model)
    if auto:
        params[f"{model.family}.{AUTO_LEARNING_RATE}"] = True
    elif model.family == "catboost" and "learning_rate" in model.search_space:
        notes.append(
            f"{model.family}.learning_rate: CatBoost's automatic learning rate is off because "
            f"the spec fixes {sorted(set(CATBOOST_AUTO_OFF) & set(model.fixed))}"
        )
    for name, space in model.search_space.items():
        if auto and name in CATBOOST_AUTO_OFF:
            continue
        if name not in defaults:
            notes.append(f"{model.family}.{name}: no known library default; the sampler picks it")
            continue
        value, inside = _in_space(defaults[name], space)
        params[f"{model.family}.{name}"] = value
        if not inside:
            notes.append(
                f"{model.family}.{name}: library default {defaults[name]!r} is outside "
                f"{_describe(space)}; the defaults trial uses {value!r}"
            )
    return params, notes


def _describe(space: ParamSpec) -> str:
    if space.type == "categorical":
        return f"the choices {space.choices}"
    return f"[{space.low:g}, {space.high:g}]"


def defaults_outside_space(spec: UseCaseSpec) -> list[str]:
    """Where a spec's search spaces cannot hold the library's defaults, one line per parameter.

    A space that excludes the default (a random forest's unlimited depth, a zero L2 penalty on
    a log scale) means the search can never try the configuration the library ships with;
    the defaults trial then takes the nearest value the space holds.
    """
    return [note for model in spec.models for note in default_trial(spec, model)[1]]


def enqueue_library_defaults(
    study: Any, spec: UseCaseSpec, log: Callable[[str], None], limit: int | None = None
) -> list[str]:
    """Enqueue each family's library-defaults trial that the study does not have yet.

    A study resumed from storage keeps the defaults trials it already ran or holds waiting
    (recognised by their ``library_defaults`` user attribute or their parameters), so they are
    never enqueued twice. Families are enqueued in spec order, at most ``limit`` of them (the
    trials left in the budget).

    Returns:
        The families enqueued.
    """
    trials = study.get_trials(deepcopy=False)
    present = {t.user_attrs.get(DEFAULTS_ATTR) for t in trials}
    enqueued: list[str] = []
    for model in spec.models:
        if limit is not None and len(enqueued) >= limit:
            break
        params, notes = default_trial(spec, model)
        if model.family in present or any(t.params == params for t in trials):
            continue
        for note in notes:
            log(note)
        study.enqueue_trial(params, user_attrs={DEFAULTS_ATTR: model.family}, skip_if_exists=True)
        shown = ", ".join(f"{k.split('.', 1)[1]}={v}" for k, v in params.items() if "." in k)
        log(f"first {model.family} trial: library defaults ({shown or 'no searched parameter'})")
        enqueued.append(model.family)
    return enqueued


def cv_folds(spec: UseCaseSpec, X: pd.DataFrame, y: pd.Series, folds: int, seed: int):  # noqa: N803
    """Fold indices: stratified for classifiers, by date for forecasts, shuffled K-fold else."""
    from sklearn.model_selection import KFold, StratifiedKFold

    if spec.task == "forecast":  # validate on days after the training days, never before
        return time_folds(X[date_column(spec)], folds)
    if spec.is_classification:
        return list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(X, y))
    return list(KFold(folds, shuffle=True, random_state=seed).split(X))


def make_objective(
    spec: UseCaseSpec,
    X: pd.DataFrame,  # noqa: N803
    y: pd.Series,
    budget: TuningBudget,
    on_trial: Callable[[Any, str, dict[str, Any], dict[str, float], str], None],
    deadline: float | None = None,
) -> Callable[[Any], float]:
    """The Optuna objective over all families of the spec.

    ``deadline`` (``time.time()``) ends a running trial: a CatBoost fit stops boosting at it
    and no fold starts after it. A trial stopped so is pruned when another trial has completed
    (a cut trial is not compared with whole ones); while none has, it completes on the folds it
    finished, so a budget too small for one whole trial still gives a model.
    """
    import optuna

    families = {m.family: m for m in spec.models}
    splits = cv_folds(spec, X, y, budget.cv_folds, budget.seed)

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("pid", os.getpid())
        trial.set_user_attr(names.TRIAL_PROCESS_ATTR, ProcessIdentity.current().as_dict())
        trial.set_user_attr("threads", fit_threads())
        family = trial.suggest_categorical("family", list(families))
        params = suggest_params(trial, families[family])
        fold_scores: list[float] = []
        best_iterations: list[int] = []
        chosen_rates: list[float] = []
        defaults = bool(trial.user_attrs.get(DEFAULTS_ATTR))
        state = "complete"
        stop = StopAtDeadline(deadline) if deadline else None
        try:
            for step, (train_idx, valid_idx) in enumerate(splits):
                pipeline = build_pipeline(spec, family, params, budget.seed)
                best = fit_pipeline(
                    pipeline,
                    X.iloc[train_idx],
                    y.iloc[train_idx],
                    budget.early_stopping_rounds,
                    budget.seed,
                    stop,
                )
                if best is not None:
                    best_iterations.append(best)
                if family == "catboost" and "learning_rate" not in params:
                    chosen_rates.append(float(pipeline.named_steps["model"].learning_rate_))
                pred, proba = predict_frame(pipeline, X.iloc[valid_idx], spec)
                score = score_predictions(spec, y.iloc[valid_idx], pred, proba, X.iloc[valid_idx])
                fold_scores.append(score[spec.primary_metric])
                trial.report(float(np.mean(fold_scores)), step)
                if not defaults and trial.should_prune():  # defaults run to the end
                    state = "pruned"
                    raise optuna.TrialPruned(f"fold {step}: {np.mean(fold_scores):.4f}")
                if stop and (stop.stopped or (step + 1 < len(splits) and past(stop.deadline))):
                    if _count(trial.study, optuna.trial.TrialState.COMPLETE):
                        state = "pruned"
                        raise optuna.TrialPruned(f"stopped at the tuning deadline, fold {step}")
                    trial.set_user_attr(DEADLINE_FOLDS_ATTR, step + 1)
                    break
        except optuna.TrialPruned:
            raise
        except Exception:
            state = "failed"
            raise
        finally:
            if best_iterations:
                trial.set_user_attr("best_iterations", int(np.mean(best_iterations)))
            if chosen_rates:
                trial.set_user_attr(LEARNING_RATE_ATTR, float(np.mean(chosen_rates)))
            metrics = (
                {f"cv_{spec.primary_metric}": float(np.mean(fold_scores))} if fold_scores else {}
            )
            on_trial(trial, family, params, metrics, state)
        return float(np.mean(fold_scores))

    return objective


def past(deadline: float | None) -> bool:
    """Whether the wall clock has reached ``deadline`` (``None``: no deadline)."""
    return deadline is not None and time.time() >= deadline


def may_start_trial(study: Any, deadline: float | None) -> bool:
    """Before the deadline, or while no trial has completed (a search always gives a model)."""
    import optuna

    return not past(deadline) or not _count(study, optuna.trial.TrialState.COMPLETE)


def stop_at(deadline: float | None) -> Callable[[Any, Any], None]:
    """An Optuna callback ending the search after a trial once :func:`may_start_trial` is no.

    Used instead of ``optimize(timeout=...)``, which would start no trial at all when the
    deadline is already near.
    """

    def stop(study: Any, trial: Any) -> None:
        if not may_start_trial(study, deadline):
            study.stop()

    return stop


def refit_params(family: str, params: dict[str, Any], user_attrs: dict[str, Any]) -> dict[str, Any]:
    """Parameters for the final fit on all rows, which has no validation set to stop on.

    The boosted families run the mean of the iterations early stopping chose in the folds
    (HistGradientBoosting with its own early stopping off). A CatBoost that chose its own
    learning rate gets the rate it chose in the folds: left to choose again for the refit's
    smaller iteration count and missing evaluation set, it would pick a different one.
    """
    params = dict(params)
    if family == "catboost" and "best_iterations" in user_attrs:
        params["iterations"] = max(10, int(user_attrs["best_iterations"]))
    if family == "catboost" and "learning_rate" not in params and LEARNING_RATE_ATTR in user_attrs:
        params["learning_rate"] = float(user_attrs[LEARNING_RATE_ATTR])
    if family == "hist_gradient_boosting" and "best_iterations" in user_attrs:
        params["max_iter"] = max(10, int(user_attrs["best_iterations"]))
        params["early_stopping"] = False
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
    """Search, then refit the best trial's pipeline on all of ``train``.

    The study is created or resumed in ``storage_url``: trials already complete count toward
    ``budget.n_trials``. With ``budget.n_workers > 1`` and a server database, the remaining
    trials run in that many worker processes (``on_trial`` is then called in the workers, so it
    must be an importable function, and MLflow runs nest under this process's active run).
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    X = model_input(train, spec)  # noqa: N806
    y = train[spec.target.name]
    if spec.is_classification:
        y = y.astype(str)
    study = optuna.create_study(
        study_name=study_name,
        storage=study_storage(storage_url),
        load_if_exists=True,
        direction=direction(spec.primary_metric),
        sampler=optuna.samplers.TPESampler(seed=budget.seed),
        pruner=_pruner(budget),
    )
    done_before = _count(study, optuna.trial.TrialState.COMPLETE)
    remaining = max(0, budget.n_trials - done_before)
    if done_before:
        log(f"resuming study {study_name}: {done_before} trials already complete")
    if remaining:
        enqueue_library_defaults(study, spec, log, limit=remaining)
    started = time.monotonic()
    end = time.time() + budget.timeout_s if budget.timeout_s else None
    search_end = end - budget.timeout_s * REFIT_SHARE if end else None

    def progress(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        try:
            best = shown(study.best_value)
        except ValueError:
            best = "n/a"
        value = "pruned" if trial.state.name == "PRUNED" else shown(trial.value)
        log(
            f"trial {trial.number + 1}/{budget.n_trials + done_before}: "
            f"{trial.params.get('family')} {spec.primary_metric}={value} best so far={best} "
            f"({time.monotonic() - started:.0f}s)"
        )

    workers = worker_count(budget.n_workers, storage_url, remaining, log)
    if remaining and workers > 1:
        log(f"searching with {workers} worker processes sharing study {study_name}")
        job = WorkerJob(
            spec,
            X,
            y,
            budget,
            str(storage_url),
            study_name,
            on_trial,
            remaining,
            deadline=search_end,
        )
        optimize_in_workers(study, job, workers, progress)
    elif remaining:
        study.optimize(
            make_objective(spec, X, y, budget, on_trial, search_end),
            n_trials=remaining,
            callbacks=[progress, stop_at(search_end)],
            catch=CATCH,
        )
    if past(search_end):
        log(f"search stopped at its deadline after {time.monotonic() - started:.0f}s")
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not completed:
        raise RuntimeError(f"{spec.name}: no Optuna trial completed in study {study_name}")
    best = study.best_trial
    family = best.params["family"]
    model_spec = next(m for m in spec.models if m.family == family)
    params = refit_params(family, estimator_params(model_spec, best.params), best.user_attrs)
    pipeline = build_pipeline(spec, family, params, budget.seed)
    refit_stop = StopAtDeadline(max(end, time.time() + MIN_REFIT_S)) if end else None
    refit_pipeline(pipeline, X, y, refit_stop)
    if refit_stop and refit_stop.stopped:
        log(f"refit stopped at the budget's end: {fitted_iterations(pipeline)} iterations")
    default_scores = {
        str(t.user_attrs[DEFAULTS_ATTR]): float(t.value)
        for t in completed
        if t.user_attrs.get(DEFAULTS_ATTR)
    }
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
        default_scores=default_scores,
        trials_cut=sum(1 for t in completed if DEADLINE_FOLDS_ATTR in t.user_attrs),
        refit_cut=bool(refit_stop and refit_stop.stopped),
    )


def _count(study: Any, state: Any) -> int:
    return len(study.get_trials(deepcopy=False, states=(state,)))


def _pruner(budget: TuningBudget) -> Any:
    import optuna

    return optuna.pruners.MedianPruner(
        n_startup_trials=budget.pruner_startup_trials, n_warmup_steps=0
    )


@dataclass
class WorkerJob:
    """Everything a worker process needs; pickled to it, so ``on_trial`` must be importable."""

    spec: UseCaseSpec
    X: pd.DataFrame  # noqa: N815
    y: pd.Series
    budget: TuningBudget
    storage_url: str
    study_name: str
    on_trial: Callable[[Any, str, dict[str, Any], dict[str, float], str], None]
    n_trials: int
    tracking: TrialTracking | None = None
    deadline: float | None = None
    index: int = 0
    threads: int | None = None


def optimize_in_workers(
    study: Any,
    job: WorkerJob,
    workers: int,
    progress: Callable[[Any, Any], None],
) -> None:
    """Run ``job.n_trials`` trials of ``study`` in ``workers`` spawned processes.

    Workers start their search together (a barrier, so a fast-importing one does not take every
    trial) and reserve trials from a shared counter, so exactly ``n_trials`` are started. The
    parent reports each finished trial through ``progress``; if a worker fails, the others are
    stopped and the error is raised here.

    Raises:
        RuntimeError: A worker failed (its error and process id in the message).
    """
    import optuna

    context = multiprocessing.get_context("spawn")
    start = context.Barrier(workers)
    reserved = context.Value("i", 0)
    errors = context.Queue()
    threads = max(1, (os.cpu_count() or 1) // workers)
    shared = dataclasses.replace(job, tracking=active_tracking(), threads=threads)
    processes = [
        context.Process(
            target=_work,
            args=(dataclasses.replace(shared, index=index), start, reserved, errors),
            name=f"optuna-worker-{index}",
        )
        for index in range(workers)
    ]
    finished = (
        optuna.trial.TrialState.COMPLETE,
        optuna.trial.TrialState.PRUNED,
        optuna.trial.TrialState.FAIL,
    )
    reported = {t.number for t in study.get_trials(deepcopy=False, states=finished)}

    def report() -> None:
        for trial in study.get_trials(deepcopy=False, states=finished):
            if trial.number not in reported:
                reported.add(trial.number)
                progress(study, trial)

    try:
        for process in processes:
            process.start()
        while True:
            alive = [p for p in processes if p.exitcode is None]
            failed = [p for p in processes if p.exitcode not in (None, 0)]
            if failed:
                raise RuntimeError(_worker_failure(job.study_name, failed, errors))
            if not alive:
                break
            wait([p.sentinel for p in alive], timeout=POLL_S)
            report()
        report()
    finally:
        for process in processes:
            if process.exitcode is None:
                process.terminate()
        for process in processes:
            process.join(timeout=10)
            if process.exitcode is None:
                process.kill()
                process.join(timeout=5)
        errors.close()


def _worker_failure(study_name: str, failed: list[Any], errors: Any) -> str:
    """The message for failed workers: each one's error as it reported it."""
    reports: dict[int, str] = {}
    try:
        while True:
            index, pid, summary = errors.get(timeout=0.5)
            reports[pid] = f"worker {index} (pid {pid}): {summary}"
    except queue.Empty:
        pass
    lines = [
        reports.get(p.pid, f"{p.name} (pid {p.pid}) exited with code {p.exitcode}") for p in failed
    ]
    return f"Optuna worker failed in study {study_name}: " + "; ".join(lines)


def _work(job: WorkerJob, start: Any, reserved: Any, errors: Any) -> None:
    """A worker process: load the study, wait for the others, take trials until none are left."""
    global _worker_tracking
    try:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        if job.threads:
            from threadpoolctl import threadpool_limits

            set_thread_budget(job.threads)  # CatBoost, random forest
            threadpool_limits(job.threads)  # OpenMP and BLAS (HistGradientBoosting, Ridge)
        if job.tracking is not None:
            import mlflow

            mlflow.set_tracking_uri(job.tracking.tracking_uri)
            mlflow.set_registry_uri(job.tracking.registry_uri)
            mlflow.set_experiment(experiment_id=job.tracking.experiment_id)
            _worker_tracking = job.tracking
        study = optuna.load_study(
            study_name=job.study_name,
            storage=study_storage(job.storage_url),
            sampler=optuna.samplers.TPESampler(seed=job.budget.seed + job.index),
            pruner=_pruner(job.budget),
        )
        objective = make_objective(job.spec, job.X, job.y, job.budget, job.on_trial, job.deadline)
        try:
            start.wait(timeout=WORKER_START_TIMEOUT_S)
        except threading.BrokenBarrierError:
            pass  # another worker did not start; the parent stops everything if it failed
        while may_start_trial(study, job.deadline):
            with reserved.get_lock():
                if reserved.value >= job.n_trials:
                    break
                reserved.value += 1
            study.optimize(objective, n_trials=1, catch=CATCH)
    except BaseException as error:
        summary = f"{type(error).__name__}: {error}"
        errors.put((job.index, os.getpid(), f"{summary}\n{traceback.format_exc()}"))
        raise SystemExit(1) from None
