"""The demo behind ``make demo``: generated BigMart days landed, ingested, tuned and promoted."""

from __future__ import annotations

import datetime as dt
import io
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlops_assets import settings
from mlops_assets.specs import load_specs


def land_generated_days(
    use_case: str, days: int, rows: int, seed: int, end: dt.date | None = None
) -> list[str]:
    """Generate ``days`` daily batches ending ``end`` (today) and land them; returns the days."""
    from mlops_assets.generators import get_generator
    from mlops_assets.orchestration import initialized_resource
    from mlops_assets.partitions import today
    from mlops_assets.resources import resources_for_environment

    spec = load_specs()[use_case]
    generator = get_generator(spec.generator or use_case)
    end = end or today()
    landed = []
    with initialized_resource(resources_for_environment(), "landing") as landing:
        for offset in range(days - 1, -1, -1):
            day = end - dt.timedelta(days=offset)
            frame = generator.generate(rows, day, seed)
            buffer = io.StringIO()
            frame.to_csv(buffer, index=False)
            landing.land(use_case, day.isoformat(), "batch.csv", buffer.getvalue().encode())
            landed.append(day.isoformat())
    return landed


def land_history(
    use_case: str,
    days: int,
    seed: int,
    end: dt.date | None = None,
    landed_on: dt.date | None = None,
) -> tuple[str, str]:
    """Land ONE generated history file of ``days`` event dates ending ``end`` (yesterday).

    It lands in the folder of ``landed_on`` (default: today, or the day after ``end`` if that
    is later), the way a history extract arrives; for an event-date use case its rows become
    ``days`` partitions. Returns the first and last event date.
    """
    from mlops_assets.orchestration import initialized_resource
    from mlops_assets.partitions import today
    from mlops_assets.resources import resources_for_environment

    spec = load_specs()[use_case]
    generator: Any = get_generator_for(spec)
    end = end or today() - dt.timedelta(days=1)
    first = end - dt.timedelta(days=days - 1)
    frame = generator.history(first, end, seed)
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    with initialized_resource(resources_for_environment(), "landing") as landing:
        landed_on = landed_on or max(end + dt.timedelta(days=1), today())
        landing.land(use_case, landed_on.isoformat(), "history.csv", buffer.getvalue().encode())
    return first.isoformat(), end.isoformat()


def get_generator_for(spec: Any) -> Any:
    """The spec's generator."""
    from mlops_assets.generators import get_generator

    return get_generator(spec.generator or spec.name)


def baseline_rmse(use_case: str) -> tuple[float, int]:
    """RMSE of predicting the training mean on the test set, and the test row count."""
    from mlops_assets.features.assets import test_key, train_key
    from mlops_assets.orchestration import initialized_resource
    from mlops_assets.resources import resources_for_environment
    from mlops_assets.storage.tables import read_table, table_key

    spec = load_specs()[use_case]
    with initialized_resource(resources_for_environment(), "lake") as lake:
        store = lake.store()
    train = read_table(store, table_key(train_key(spec).path))
    test = read_table(store, table_key(test_key(spec).path))
    target = spec.target.name
    error = test[target].to_numpy(float) - train[target].mean()
    return float(np.sqrt(np.mean(error**2))), len(test)


@dataclass
class DayRow:
    """One line of the demo's day-by-day table."""

    day: str
    rows: int
    rmse: float | None
    max_psi: float | None
    retrained: str
    promoted: str


@dataclass
class Story:
    """What the simulated days did."""

    rows: list[DayRow] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def _metadata(instance: Any, key: Any, partition: str | None = None, run_id: str | None = None):
    import dagster as dg

    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition else None),
        limit=5,
    ).records
    for record in records:
        if run_id is None or record.run_id == run_id:
            return {
                k: getattr(v, "value", v) for k, v in record.asset_materialization.metadata.items()
            }
    return {}


def evaluate_sensor(definitions: Any, instance: Any, name: str, cursor: str | None):
    """One tick of a sensor, as the daemon would evaluate it: its run requests and new cursor."""
    import dagster as dg

    from mlops_assets.orchestration import initialized_resource

    with initialized_resource(definitions.resources or {}, "landing") as landing:
        with dg.build_sensor_context(
            instance=instance,
            cursor=cursor,
            definitions=definitions,
            resources={"landing": landing},
        ) as context:
            data = definitions.resolve_sensor_def(name).evaluate_tick(context)
    return data.run_requests or [], data.cursor or cursor


def simulate_days(
    use_case: str = "bigmart_sales",
    days: int = 30,
    rows: int = 400,
    drift_from: int = 20,
    n_trials: int | None = 8,
    seed: int = 7,
    end: dt.date | None = None,
    log: Any = print,
) -> Story:
    """Simulate ``days`` days of the platform's life.

    Each day a batch lands (drifted from day ``drift_from``), the landing sensor's run request
    ingests it, and the retraining policy's sensor decides whether to retrain and promote, as
    the daemon would. Runs carry the simulated day as ``mlops/as_of``.
    """
    from mlops_assets.features.assets import clean_key
    from mlops_assets.ingest.simulate import SimulateConfig, land_generated
    from mlops_assets.monitoring.assets import drift_key, performance_key
    from mlops_assets.orchestration import (
        execute,
        initialized_resource,
        instance,
        load_definitions,
        retrain_run_config,
    )
    from mlops_assets.partitions import today
    from mlops_assets.registry.assets import champion_key
    from mlops_assets.registry.ledger import AS_OF_TAG
    from mlops_assets.use_case import ingest_job_name, retrain_job_name

    spec = load_specs()[use_case]
    definitions = load_definitions()
    dagster_instance = instance()
    first = (end or today()) - dt.timedelta(days=days - 1)
    landing_cursor = retrain_cursor = None
    story = Story()
    for number in range(1, days + 1):
        day = (first + dt.timedelta(days=number - 1)).isoformat()
        drifted = number >= drift_from
        config = SimulateConfig(
            day=day,
            rows=rows,
            seed=seed,
            shift_features=DEMO_DRIFT_FEATURES if drifted else {},
            target_scale=DEMO_TARGET_SCALE if drifted else 1.0,
        )
        with initialized_resource(definitions.resources or {}, "landing") as landing:
            land_generated(landing, spec, config)
        requests, landing_cursor = evaluate_sensor(
            definitions, dagster_instance, f"{use_case}__landing_sensor", landing_cursor
        )
        for request in requests:
            run = execute(
                definitions,
                ingest_job_name(spec),
                dagster_instance,
                partition_key=request.partition_key,
                tags={**request.tags, AS_OF_TAG: f"{day}T12:00:00+00:00"},
            )
            if not run.success:
                story.failures.append(f"{day} ingest: {run.errors}")
        retrained = promoted = ""
        requests, retrain_cursor = evaluate_sensor(
            definitions, dagster_instance, f"{use_case}__retrain_sensor", retrain_cursor
        )
        for request in requests:
            run = execute(
                definitions,
                retrain_job_name(spec),
                dagster_instance,
                run_config=retrain_run_config(spec, n_trials, seed),
                tags={**request.tags, AS_OF_TAG: f"{day}T23:59:59+00:00"},
            )
            retrained = request.tags.get("mlops/trigger", "yes").removeprefix("policy: ")
            if not run.success:
                story.failures.append(f"{day} retrain: {run.errors}")
                continue
            gate = _metadata(dagster_instance, champion_key(spec), run_id=run.run_id)
            promoted = f"v{gate['champion_version']}" if gate.get("promoted") else "no"
        perf = _metadata(dagster_instance, performance_key(spec), day)
        drift = _metadata(dagster_instance, drift_key(spec), day)
        clean = _metadata(dagster_instance, clean_key(spec), day)
        row = DayRow(
            day=day,
            rows=int(clean.get("rows_out", 0)),
            rmse=perf.get(spec.primary_metric),
            max_psi=drift.get("max_psi"),
            retrained=retrained,
            promoted=promoted,
        )
        story.rows.append(row)
        log(format_row(number, row, drifted))
    return story


DEMO_DRIFT_FEATURES = {"Item_MRP": 1.0, "Item_Visibility": 1.5}
DEMO_TARGET_SCALE = 1.3
HEADER = (
    f"{'day':>3} {'date':<10} {'rows':>5} {'RMSE':>8} {'max PSI':>8}  {'retrained':<24} promoted"
)


def format_row(number: int, row: DayRow, drifted: bool) -> str:
    """One line of the day-by-day table."""
    rmse = f"{row.rmse:8.1f}" if row.rmse is not None else f"{'-':>8}"
    psi = f"{row.max_psi:8.3f}" if row.max_psi is not None else f"{'-':>8}"
    mark = "*" if drifted else " "
    return (
        f"{number:>3}{mark}{row.day:<10} {row.rows:>5} {rmse} {psi}  {row.retrained or '-':<28} "
        f"{row.promoted or '-'}"
    )


def quiet_libraries() -> None:
    """Keep the demo's table readable: no progress bars or per-version notices from MLflow."""
    import logging
    import os
    import warnings

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # mlflow sets its level from this variable when imported (over any set before); its
    # pickle-format warning is about the models we log on purpose (custom transformers).
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # Known and harmless here: Dagster marks `backfill_policy` (event-date use cases) as beta;
    # the earliest time folds of a short forecast history have no 28-day lag yet.
    warnings.filterwarnings("ignore", message=".*backfill_policy.*")
    warnings.filterwarnings("ignore", message="Skipping features without any observed values")


def reset_home() -> None:
    """Empty ``MLOPS_HOME`` so the demo's story starts from nothing (and is reproducible)."""
    import shutil

    home = settings.mlops_home()
    if home.exists():
        shutil.rmtree(home)


HISTORY_DAYS = 75
"""Event dates of the history file the demo lands for an event-date (forecast) use case."""


def brief_use_cases(rows: int, n_trials: int, seed: int, log: Any = print) -> list[str]:
    """Every other use case with a generator: three landed days, one refresh, small budget.

    An event-date (forecast) use case gets one history file instead, ingested as one run.
    """
    from mlops_assets.orchestration import instance, load_definitions, refresh

    failures = []
    definitions, dagster_instance = load_definitions(), instance()
    for name, spec in load_specs().items():
        if name == "bigmart_sales" or not spec.generator:
            continue
        started = time.monotonic()
        if spec.partitions.by == "event_date":  # one history file, ingested as one run
            first, last = land_history(name, days=HISTORY_DAYS, seed=seed)
            landed = f"a history file of {HISTORY_DAYS} days ({first}..{last})"
        else:
            land_generated_days(name, days=3, rows=rows, seed=seed)
            landed = f"3 days x {rows} rows"
        outcome = refresh(spec, definitions, dagster_instance, n_trials=n_trials, seed=seed)
        state = "ok" if outcome.success else "FAILED"
        log(f"{name}: {landed}, {n_trials} trials: {state} ({time.monotonic() - started:.0f}s)")
        if not outcome.success:
            runs = [*outcome.ingested, *([outcome.retrain] if outcome.retrain else [])]
            failures += [f"{name} {run.job}: {run.errors}" for run in runs if not run.success]
    return failures


def run_demo(
    days: int = 30,
    rows: int = 400,
    n_trials: int | None = 8,
    seed: int = 7,
    drift_from: int = 20,
    reset: bool = False,
    others: bool = True,
) -> int:
    """The 30-day BigMart story, then the other use cases briefly; returns an exit code."""
    from mlops_assets.registry.mlflow_resource import MlflowTracking
    from mlops_assets.registry.status import use_case_status, use_case_table

    quiet_libraries()
    if reset:
        reset_home()
    started = time.monotonic()
    print(f"MLOPS_HOME={settings.mlops_home()}")
    print(
        f"{days} simulated days of BigMart batches ({rows} rows a day); drift (*) from day "
        f"{drift_from}: Item_MRP and Item_Visibility shifted, sales x{DEMO_TARGET_SCALE}"
    )
    print(HEADER)
    story = simulate_days(days=days, rows=rows, drift_from=drift_from, n_trials=n_trials, seed=seed)
    for failure in story.failures:
        print(f"FAILED {failure}")
    spec = load_specs()["bigmart_sales"]
    status = use_case_status(spec, MlflowTracking())
    champion = status["champion"]
    if champion is None:
        print("no champion in the registry")
        return 1
    baseline, test_rows = baseline_rmse("bigmart_sales")
    rmse = champion["metrics"][spec.primary_metric]
    print()
    print(f"champion: {status['model_name']} v{champion['version']} (run {champion['run_id']})")
    print(
        f"test RMSE {rmse:.1f} on {test_rows} rows; predict-the-mean baseline {baseline:.1f} "
        f"({1 - rmse / baseline:.0%} lower)"
    )
    failures = list(story.failures)
    if others:
        print()
        print("the other use cases, briefly:")
        failures += brief_use_cases(rows=300, n_trials=4, seed=seed)
        for failure in failures[len(story.failures) :]:
            print(f"FAILED {failure}")
    print()
    print("\n".join(use_case_table()))
    print()
    print(
        f"done in {time.monotonic() - started:.0f}s. History: mlops history bigmart_sales; "
        "UI: make dev (http://127.0.0.1:3000)"
    )
    return 1 if failures else 0
