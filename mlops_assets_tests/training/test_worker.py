"""``mlops tune-worker``: workers add trials to the study ``tuned_model`` then resumes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mlops_assets.cli import build_parser, cmd_tune_worker, main
from mlops_assets.components.features import train_key
from mlops_assets.environment import Environment
from mlops_assets.features.cleaning import clean_frame
from mlops_assets.generators import get_generator
from mlops_assets.specs import use_case_specs
from mlops_assets.storage.objectstore import LocalObjectStore
from mlops_assets.storage.tables import table_key, write_table
from mlops_assets.training.tuning import TuningBudget, run_study
from mlops_assets.training.worker import read_train_set, study_name_for, tune_worker

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def stored_train(mlops_home: Path) -> tuple[LocalObjectStore, pd.DataFrame]:
    spec = use_case_specs()["bigmart_sales"]
    raw = get_generator("bigmart_sales").generate(500, dt.date(2025, 1, 1), 5)
    train = clean_frame(raw, spec)[0]
    train["_landed_date"] = "2025-01-01"
    store = LocalObjectStore(mlops_home / "storage")
    write_table(store, table_key(train_key(spec).path), train)
    return store, train


def test_workers_add_trials_that_tuned_model_resumes(stored_train, mlops_home: Path) -> None:
    spec = use_case_specs()["bigmart_sales"]
    store, _ = stored_train
    train = read_train_set(spec, store)  # as tuned_model receives it, through the IO manager
    optuna_db = f"sqlite:///{mlops_home / 'optuna.db'}"
    tracking = Environment.from_env().tracking()
    first = tune_worker(spec, store, tracking, optuna_db, 2, index=0, log=lambda m: None)
    second = tune_worker(spec, store, tracking, optuna_db, 2, index=1, log=lambda m: None)
    assert first.study_name == second.study_name == study_name_for(spec, train)
    assert (first.trials_added, second.trials_added) == (2, 2)
    messages: list[str] = []
    budget = TuningBudget(4, None, 3, spec.tuning.seed, 10, 20)
    result = run_study(
        spec, train, budget, optuna_db, first.study_name, lambda *a: None, messages.append
    )
    assert any("resuming study" in m and "trials already complete" in m for m in messages)
    assert not any(m.startswith("trial ") for m in messages), "no trial was left to run"
    assert result.trials_complete + result.trials_pruned + result.trials_failed == 4
    client = tracking.client()
    runs = client.search_runs(
        [client.get_experiment_by_name(spec.name).experiment_id],
        filter_string="tags.`optuna.worker_index` = '1'",
    )
    assert len(runs) == 1, "each worker's trials nest under one MLflow run"


def test_without_a_training_set_the_worker_says_what_to_do(mlops_home: Path) -> None:
    with pytest.raises(SystemExit, match="no training set .* run the retrain job"):
        main(["tune-worker", "bigmart_sales", "--trials", "1"])


def test_the_kubernetes_job_runs_an_existing_command() -> None:
    job = yaml.safe_load((REPO / "deploy/k8s/optuna-workers-job.yaml").read_text())
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[0] == "mlops"
    args = build_parser().parse_args(command[1:])
    assert args.func is cmd_tune_worker and args.use_case == "bigmart_sales"
    assert args.trials > 0 and args.index is None  # the pod's JOB_COMPLETION_INDEX seeds it


def test_a_segmented_use_case_needs_the_segment_whose_study_to_grow(mlops_home: Path) -> None:
    # Without --segment there is no study to add to: each segment's model has its own.
    with pytest.raises(SystemExit, match="needs --segment .one of: cap_gill, stem_season"):
        main(["tune-worker", "mushroom", "--trials", "1"])
    with pytest.raises(SystemExit, match="no segment 'gills'"):
        main(["tune-worker", "mushroom", "--trials", "1", "--segment", "gills"])
    # The segment's view reaches the worker: its training set is the use case's.
    with pytest.raises(SystemExit, match="mushroom: no training set"):
        main(["tune-worker", "mushroom", "--trials", "1", "--segment", "cap_gill"])


def test_a_segment_worker_grows_the_segments_study(mlops_home: Path, capsys) -> None:
    """The study the segment's ``tuned_model`` opens, on the segment's features."""
    spec = use_case_specs()["mushroom"]
    raw = get_generator("mushroom").generate(120, dt.date(2025, 3, 1), 5)
    train = clean_frame(raw, spec)[0]
    store = LocalObjectStore(mlops_home / "storage")
    write_table(store, table_key(train_key(spec).path), train)
    main(["tune-worker", "mushroom", "--trials", "1", "--segment", "cap_gill"])
    view = spec.segment_spec("cap_gill")
    train = read_train_set(view, store)  # as tuned_model receives it, through the IO manager
    assert f"added 1 trials to {study_name_for(view, train)}" in capsys.readouterr().out
    assert study_name_for(view, train).startswith("mushroom__cap_gill-")
