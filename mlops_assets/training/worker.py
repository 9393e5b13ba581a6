"""``mlops tune-worker``: one more process adding trials to a use case's current Optuna study.

The scale-out path (``deploy/k8s/optuna-workers-job.yaml``): pods of a Kubernetes Job each run
this command. A worker reads the stored training set, opens the study ``tuned_model`` would open
for it (named by the registered model and the data version, Optuna RDB storage, created if
missing), and runs its trials with the sampler seeded by ``seed + index`` so that parallel pods
propose different parameters. Its trials are nested MLflow runs under one ``tune-worker`` run.

The next ``tuned_model`` run on the same training data finds those trials complete, runs only
the rest of its budget and refits the best trial: workers add search, they never promote.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlops_assets import names
from mlops_assets.features.pipeline import model_input
from mlops_assets.features.splits import data_version
from mlops_assets.metrics import direction
from mlops_assets.registry.tracking import Tracking
from mlops_assets.specs.model import UseCaseSpec
from mlops_assets.storage.objectstore import ObjectStore
from mlops_assets.storage.tables import read_table, table_key
from mlops_assets.training.registration import log_trial
from mlops_assets.training.tuning import (
    CATCH,
    _pruner,
    budget_for,
    make_objective,
    study_storage,
)


class TuneWorkerError(RuntimeError):
    """The worker cannot start (no training set yet); the message says what to do."""


@dataclass(frozen=True)
class WorkerReport:
    """What one worker added to a study."""

    study_name: str
    trials_added: int
    complete_in_study: int
    best_value: float | None


def study_name_for(spec: UseCaseSpec, train: Any) -> str:
    """The study ``tuned_model`` uses for this training data."""
    return f"{spec.registered_model_name()}-{data_version(train)}"


def read_train_set(spec: UseCaseSpec, store: ObjectStore) -> Any:
    """The stored ``train_set`` of a use case (what the last retrain run selected)."""
    key = table_key(names.asset_path(spec.name, names.TRAIN_SET))
    if not store.exists(key):
        raise TuneWorkerError(
            f"{spec.name}: no training set at {store.describe(key)}; run the retrain job "
            f"(or materialize {spec.name}/train_set) first"
        )
    return read_table(store, key)


def tune_worker(
    spec: UseCaseSpec,
    store: ObjectStore,
    tracking: Tracking,
    storage_url: str,
    n_trials: int,
    timeout_s: float | None = None,
    index: int = 0,
    log: Callable[[str], None] = print,
) -> WorkerReport:
    """Add up to ``n_trials`` trials to the current study of ``spec``."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    train = read_train_set(spec, store)
    name = study_name_for(spec, train)
    budget = budget_for(spec, n_trials=n_trials, timeout_s=timeout_s)
    study = optuna.create_study(
        study_name=name,
        storage=study_storage(storage_url),
        load_if_exists=True,
        direction=direction(spec.primary_metric),
        sampler=optuna.samplers.TPESampler(seed=budget.seed + index),
        pruner=_pruner(budget),
    )
    before = len(study.trials)
    X = model_input(train, spec)  # noqa: N806
    y = train[spec.target.name].astype(str) if spec.is_classification else train[spec.target.name]
    log(f"worker {index}: {n_trials} trials into study {name} ({before} trials so far)")
    tags = {"use_case": spec.name, names.STUDY_TAG: name, "optuna.worker_index": str(index)}
    with tracking.start_run(spec.name, f"tune-worker-{index}", tags, None):
        deadline = time.time() + timeout_s if timeout_s else None  # no refit here: all of it
        study.optimize(
            make_objective(spec, X, y, budget, log_trial, deadline),
            n_trials=n_trials,
            timeout=timeout_s,
            catch=CATCH,
        )
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = study.best_value if complete else None
    return WorkerReport(name, len(study.trials) - before, len(complete), best)
