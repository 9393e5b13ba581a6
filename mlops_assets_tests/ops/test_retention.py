"""``mlops gc``: what a use case's retention removes, what it keeps, and the ledger's record.

A real home: registered MLflow versions (SQLite tracking), their models imported into BentoML
and bentos built by the real BentoML, Optuna studies in its database, nested trial runs, and a
prediction log of several days in the folder store.
"""

from __future__ import annotations

import datetime as dt

import mlflow
import optuna
import pytest
from mlflow.entities import ViewType

from mlops_assets.cli import main
from mlops_assets.environment import Environment
from mlops_assets.features.cleaning import clean_frame
from mlops_assets.features.pipeline import model_input
from mlops_assets.generators import get_generator
from mlops_assets.names import CHALLENGER, CHAMPION, STUDY_TAG
from mlops_assets.ops.retention import RETENTION_ACTION, collect
from mlops_assets.ops.serve import bento_store
from mlops_assets.prediction_log import log_arrow, log_days, log_prefix, read_prediction_log
from mlops_assets.registry.ledger import read_ledger
from mlops_assets.registry.status import ModelRef
from mlops_assets.specs import use_case_specs
from mlops_assets.specs.model import RetentionSpec
from mlops_assets.storage.tables import write_arrow
from mlops_assets.training.families import build_pipeline
from mlops_assets.training.registration import log_and_register
from mlops_assets.training.tuning import studies_of, study_storage
from mlops_assets_tests.harness.records import scored_batch

UC = "bigmart_sales"
TODAY = dt.date(2026, 6, 30)


def register(spec, tracking, alpha: float, study: str) -> tuple[str, str]:
    """A registered version whose tuning run holds two trial runs of ``study``."""
    frame, _ = clean_frame(get_generator(UC).generate(200, dt.date(2025, 1, 1), 1), spec)
    pipeline = build_pipeline(spec, "ridge", {"alpha": alpha})
    pipeline.fit(model_input(frame, spec), frame[spec.target.name])
    with tracking.start_run(UC, "tune", {STUDY_TAG: study}, None) as run:
        for trial in range(2):
            with mlflow.start_run(run_name=f"trial-{trial}", nested=True):
                mlflow.log_metric("rmse", float(trial))
        version = log_and_register(spec, tracking, pipeline, frame.assign(_landed_date="x"))
        return version, run.info.run_id


def make_study(url: str, name: str) -> None:
    study = optuna.create_study(study_name=name, storage=study_storage(url))
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=1)


def write_log_day(store, spec, day: str, parts: int) -> None:
    for part in range(parts):
        scored = scored_batch(spec, [f"{day}-{part}"], [2])
        scored.scored_at = dt.datetime.fromisoformat(f"{day}T08:0{part}:00+00:00")
        key = f"{log_prefix(spec.name)}{day}/{scored.scored_at:%Y%m%dT%H%M%S%fZ}-1-{part}.parquet"
        write_arrow(store, key, log_arrow([scored], spec))


@pytest.fixture
def home(mlops_home):
    """Five versions of BigMart (v2 champion, v5 challenger), six studies, four log days."""
    mlops_home.mkdir(parents=True)
    spec = use_case_specs()[UC]
    env = Environment.from_env()
    tracking, bentos, store = env.tracking(), bento_store(env), env.lake()
    make_study(env.optuna_url, f"{UC}-000000000000")  # a study no version came from
    runs = {}
    for number in range(1, 6):
        study = f"{UC}-{number:012d}"
        make_study(env.optuna_url, study)
        version, run_id = register(spec, tracking, float(number), study)
        assert version == str(number)
        runs[version] = run_id
        model, _ = bentos.import_model(spec, ModelRef(UC, version, run_id))
        if number <= 2:  # bentos were built for v1 (champion once) and v2 (champion now)
            bentos.build(spec, {None: ModelRef(UC, version, run_id)}, {None: model})
    client = tracking.client()
    client.set_registered_model_alias(UC, CHAMPION, "2")
    client.set_registered_model_alias(UC, CHALLENGER, "5")
    for day, parts in (("2026-03-01", 2), ("2026-04-05", 1), ("2026-06-29", 3), ("2026-06-30", 2)):
        write_log_day(store, spec, day, parts)
    return spec, env, runs


def test_gc_keeps_champion_challenger_and_the_newest_and_says_so_in_the_ledger(
    home, capsys
) -> None:
    spec, env, runs = home
    assert main(["gc", UC, "--dry-run"]) == 0
    out = capsys.readouterr().out
    # The spec's defaults: 90 days of log, the 3 newest versions and 2 newest studies kept.
    assert f"{UC}: prediction log before " in out and "would remove 4 days" in out
    assert f"{UC}: would remove 1 bentos, 1 BentoML models, 2 Optuna studies, 2 MLflow" in out
    assert "versions kept: v2, v3, v4, v5" in out
    assert len(bento_store(env).api().models.list(UC)) == 5, "a dry run removes nothing"

    spec = spec.model_copy(
        update={
            "retention": RetentionSpec(prediction_log_days=90, recent_versions=1, recent_studies=1)
        }
    )
    tracking, bentos, store = env.tracking(), bento_store(env), env.lake()
    rows_before = len(read_prediction_log(store, spec.name, "2026-06-29"))

    planned = collect(spec, env, bentos, today=TODAY, dry_run=True)
    assert planned.log_dropped == 1  # 2026-03-01 is before 2026-04-02, the 90th day back
    (slot,) = planned.slots
    assert slot.kept_versions == ["2", "5"]
    assert len(bentos.api().models.list(UC)) == 5

    done = collect(spec, env, bentos, today=TODAY)
    (slot,) = done.slots
    assert (slot.models, slot.bentos) == (planned.slots[0].models, planned.slots[0].bentos)
    assert sorted(m.info.labels["mlflow_model_version"] for m in bentos.api().models.list(UC)) == [
        "2",
        "5",
    ]
    assert [b.info.labels["mlflow_model_version"] for b in bentos.api().bentos.list()] == ["2"]
    assert bentos.current_bento_tag(spec) is not None, "the champion's bento is served as it was"

    remaining = studies_of(env.optuna_url, UC)
    assert remaining == [f"{UC}-{2:012d}", f"{UC}-{5:012d}"]
    assert slot.studies == [f"{UC}-{n:012d}" for n in (0, 1, 3, 4)]
    assert slot.trial_runs == 6  # two per removed study that has a tuning run
    client = tracking.client()
    experiment = client.get_experiment_by_name(UC).experiment_id
    left = client.search_runs([experiment], run_view_type=ViewType.ALL)
    trials = [r for r in left if "mlflow.parentRunId" in r.data.tags]
    assert sorted(r.data.tags["mlflow.parentRunId"] for r in trials) == sorted(
        [runs["2"]] * 2 + [runs["5"]] * 2
    ), "removed trial runs are gone for good (mlflow gc), the kept studies' remain"
    assert {r.info.run_id for r in left} >= set(runs.values()), "tuning runs are never removed"
    assert set(tracking.versions(UC)) == {"1", "2", "3", "4", "5"}, "registered versions stay"

    assert log_days(store, spec.name) == ["2026-04-05", "2026-06-29", "2026-06-30"]
    assert done.log_days_compacted == 1  # 2026-06-29 (three objects); today's is left alone
    day = list(store.list(f"{log_prefix(spec.name)}2026-06-29/"))
    assert sum(i.key.endswith(".parquet") for i in day) == 1
    assert len(read_prediction_log(store, spec.name, "2026-06-29")) == rows_before
    assert len(list(store.list(f"{log_prefix(spec.name)}2026-06-30/"))) == 2

    entry = read_ledger(store, spec).iloc[-1]
    assert entry["action"] == RETENTION_ACTION and entry["champion_version"] == "2"
    assert "3 BentoML models" in entry["reason"] and "4 Optuna studies" in entry["reason"]
    assert f"{UC}:v1-" in entry["reason"], "the ledger names what went"

    again = collect(spec, env, bentos, today=TODAY)
    assert (again.slots[0].models, again.slots[0].studies, again.slots[0].trial_runs) == (
        [],
        [],
        0,
    )
    assert again.log_dropped == 0 and again.log_days_compacted == 0

    assert main(["gc", UC]) == 0  # the defaults keep more: nothing left to remove but old days
    out = capsys.readouterr().out
    assert f"{UC}: removed 0 bentos, 0 BentoML models, 0 Optuna studies, 0 MLflow" in out
    assert "removed 3 days" in out and log_days(env.lake(), UC) == []
