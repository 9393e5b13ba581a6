"""The demo behind ``make demo``: generated BigMart days landed, ingested, tuned and promoted.

The story is the same on every run and every machine: each simulated day's batch is drawn from
the day's index in the run (not its calendar date, which moves with the day you run it), and
every tuning budget is a number of trials, never seconds. The M5 history is dated in the real
M5 calendar, so its weekdays, events and SNAP days never move either.
"""

from __future__ import annotations

import datetime as dt
import io
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import numpy as np

from mlops_assets import environment, names
from mlops_assets.components.features import clean_key
from mlops_assets.components.registry import champion_key
from mlops_assets.environment import Environment
from mlops_assets.generators import get_generator
from mlops_assets.ingest.days import today
from mlops_assets.ingest.simulate import SimulateSettings, land_generated
from mlops_assets.monitoring.summary import read_summary
from mlops_assets.ops.launch import execute, instance, load_definitions, refresh, retrain_run_config
from mlops_assets.ops.status import use_case_table
from mlops_assets.registry.status import slot_status
from mlops_assets.specs.catalog import use_case_specs
from mlops_assets.specs.model import UseCaseSpec
from mlops_assets.storage.tables import read_table, table_key

DEMO_DRIFT_FEATURES = {"Item_MRP": 1.0, "Item_Visibility": 1.5}
DEMO_TARGET_SCALE = 1.3
HISTORY_DAYS = 75
"""Event dates of the history file the demo lands for an event-date (forecast) use case."""
HISTORY_END = dt.date(2016, 4, 24)
"""The last day of the M5 data (``d_1913``): the demo's history is dated in the real calendar."""
HEADER = (
    f"{'day':>3} {'date':<10} {'rows':>5} {'RMSE':>8} {'max PSI':>8}  {'retrained':<24} promoted"
)


def say(line: str) -> None:
    """Print a line at once (the demo's progress reaches a pipe or ``tee`` as it happens)."""
    print(line, flush=True)


def land_generated_days(
    env: Environment,
    use_case: str,
    days: int,
    rows: int,
    seed: int,
    end: dt.date | None = None,
) -> list[str]:
    """Generate ``days`` daily batches ending ``end`` (today) and land them; returns the days.

    Day ``n`` of the run is drawn from stream ``n``: the same batches whatever the dates.
    """
    spec = use_case_specs(env.specs_dirs)[use_case]
    end = end or today()
    landing = env.landing_zone()
    landed = []
    for number in range(1, days + 1):
        day = end - dt.timedelta(days=days - number)
        settings = SimulateSettings(rows=rows, seed=seed, day=day.isoformat(), stream=number)
        land_generated(landing, spec, settings)
        landed.append(day.isoformat())
    return landed


def land_history(
    env: Environment,
    use_case: str,
    days: int,
    seed: int,
    end: dt.date = HISTORY_END,
    landed_on: dt.date | None = None,
) -> tuple[str, str]:
    """Land ONE generated history file of ``days`` event dates ending ``end``.

    It lands in the folder of ``landed_on`` (default: today), the way a history extract
    arrives; for an event-date use case its rows become ``days`` partitions. Returns the first
    and last event date.
    """
    spec = use_case_specs(env.specs_dirs)[use_case]
    generator: Any = get_generator(spec.generator or spec.name)
    first = end - dt.timedelta(days=days - 1)
    frame = generator.history(first, end, seed)
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    day = (landed_on or today()).isoformat()
    env.landing_zone().land(use_case, day, "history.csv", buffer.getvalue().encode())
    return first.isoformat(), end.isoformat()


def baseline_rmse(env: Environment, spec: UseCaseSpec) -> tuple[float, int]:
    """RMSE of predicting the training mean on the test set, and the test row count."""
    store = env.lake()
    train = read_table(store, table_key(names.asset_path(spec.name, names.TRAIN_SET)))
    test = read_table(store, table_key(names.asset_path(spec.name, names.TEST_SET)))
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


def run_metadata(
    dagster_instance: dg.DagsterInstance,
    key: dg.AssetKey,
    partition: str | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """The metadata of an asset's latest materialization (of a partition, or by a run)."""
    records = dagster_instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition else None),
        limit=5,
    ).records
    for record in records:
        if run_id is None or record.run_id == run_id:
            metadata = record.asset_materialization.metadata if record.asset_materialization else {}
            return {k: getattr(v, "value", v) for k, v in metadata.items()}
    return {}


def evaluate_sensor(
    definitions: dg.Definitions, dagster_instance: dg.DagsterInstance, name: str, cursor: str | None
) -> tuple[list[dg.RunRequest], str | None]:
    """One tick of a sensor, as the daemon would evaluate it: its run requests and new cursor."""
    with dg.build_sensor_context(
        instance=dagster_instance,
        cursor=cursor,
        definitions=definitions,
        resources=definitions.resources,
    ) as context:
        data = definitions.resolve_sensor_def(name).evaluate_tick(context)
    return list(data.run_requests or []), data.cursor or cursor


def simulate_days(
    env: Environment,
    use_case: str = "bigmart_sales",
    days: int = 30,
    rows: int = 400,
    drift_from: int = 20,
    n_trials: int | None = 8,
    seed: int = 7,
    end: dt.date | None = None,
    log: Callable[[str], None] = say,
) -> Story:
    """Simulate ``days`` days of the platform's life.

    Each day a batch lands (drifted from day ``drift_from``), the landing sensor's run request
    ingests it, and the retraining policy's sensor decides whether to retrain and promote, as
    the daemon would. Runs carry the simulated day as ``mlops/as_of``.
    """
    spec = use_case_specs(env.specs_dirs)[use_case]
    definitions = load_definitions()
    dagster_instance = instance(env)
    first = (end or today()) - dt.timedelta(days=days - 1)
    landing_cursor = retrain_cursor = None
    story = Story()
    store = env.lake()
    for number in range(1, days + 1):
        day = (first + dt.timedelta(days=number - 1)).isoformat()
        drifted = number >= drift_from
        settings = SimulateSettings(
            day=day,
            rows=rows,
            seed=seed,
            shift_features=DEMO_DRIFT_FEATURES if drifted else {},
            target_scale=DEMO_TARGET_SCALE if drifted else 1.0,
            stream=number,
        )
        land_generated(env.landing_zone(), spec, settings)
        requests, landing_cursor = evaluate_sensor(
            definitions, dagster_instance, names.landing_sensor(use_case), landing_cursor
        )
        for request in requests:
            run = execute(
                definitions,
                names.ingest_job(use_case),
                dagster_instance,
                tags={**request.tags, names.AS_OF_TAG: f"{day}T12:00:00+00:00"},
            )
            if not run.success:
                story.failures.append(f"{day} ingest: {run.errors}")
        retrained = promoted = ""
        requests, retrain_cursor = evaluate_sensor(
            definitions, dagster_instance, names.retrain_sensor(use_case), retrain_cursor
        )
        for request in requests:
            run = execute(
                definitions,
                names.retrain_job(use_case),
                dagster_instance,
                run_config=retrain_run_config(spec, n_trials, seed),
                tags={**request.tags, names.AS_OF_TAG: f"{day}T23:59:59+00:00"},
            )
            retrained = request.tags.get(names.TRIGGER_TAG, "yes").removeprefix("policy: ")
            if not run.success:
                story.failures.append(f"{day} retrain: {run.errors}")
                continue
            gate = run_metadata(dagster_instance, champion_key(spec), run_id=run.run_id)
            promoted = f"v{gate[names.CHAMPION_VERSION]}" if gate.get(names.PROMOTED) else "no"
        summary = read_summary(store, spec, day)
        slot = summary.slots[0] if summary and summary.slots else None
        clean = run_metadata(dagster_instance, clean_key(spec), day)
        row = DayRow(
            day=day,
            rows=int(clean.get(names.ROWS_OUT, 0)),
            rmse=slot.score if slot else None,
            max_psi=slot.max_psi if slot else None,
            retrained=retrained,
            promoted=promoted,
        )
        story.rows.append(row)
        log(format_row(number, row, drifted))
    return story


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
    """Keep the demo's table readable: MLflow quieted as everywhere, and one known notice.

    The earliest time folds of a short forecast history have no 28-day lag yet (scikit-learn
    says so for each fold).
    """
    environment.quiet_libraries()
    warnings.filterwarnings("ignore", message="Skipping features without any observed values")


def reset_home(env: Environment) -> None:
    """Empty ``MLOPS_HOME`` so the demo's story starts from nothing (and is reproducible)."""
    if env.home.exists():
        shutil.rmtree(env.home)


def brief_use_cases(
    env: Environment, rows: int, n_trials: int, seed: int, log: Callable[[str], None] = say
) -> list[str]:
    """Every other use case with a generator: three landed days, one refresh, small budget.

    An event-date (forecast) use case gets one history file instead, ingested as one run.
    """
    failures = []
    definitions, dagster_instance = load_definitions(), instance(env)
    for name, spec in use_case_specs(env.specs_dirs).items():
        if name == "bigmart_sales" or not spec.generator:
            continue
        started = time.monotonic()
        if spec.partitions.by == "event_date":  # one history file, ingested as one run
            first, last = land_history(env, name, days=HISTORY_DAYS, seed=seed)
            landed = f"a history file of {HISTORY_DAYS} days ({first}..{last})"
        else:
            land_generated_days(env, name, days=3, rows=rows, seed=seed)
            landed = f"3 days x {rows} rows"
        log(f"{name}: {landed} landed; ingesting and tuning ({n_trials} trials)...")
        outcome = refresh(spec, env, definitions, dagster_instance, n_trials=n_trials, seed=seed)
        state = "ok" if outcome.success else "FAILED"
        log(f"{name}: {state} ({time.monotonic() - started:.0f}s)")
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
    quiet_libraries()
    env = Environment.from_env()
    if reset:
        reset_home(env)
    started = time.monotonic()
    print(f"MLOPS_HOME={env.home}")
    print(
        f"{days} simulated days of BigMart batches ({rows} rows a day); drift (*) from day "
        f"{drift_from}: Item_MRP and Item_Visibility shifted, sales x{DEMO_TARGET_SCALE}"
    )
    print(HEADER)
    story = simulate_days(
        env, days=days, rows=rows, drift_from=drift_from, n_trials=n_trials, seed=seed
    )
    for failure in story.failures:
        print(f"FAILED {failure}")
    spec = use_case_specs(env.specs_dirs)["bigmart_sales"]
    status = slot_status(spec, env.tracking())
    champion = status["champion"]
    if champion is None:
        print("no champion in the registry")
        return 1
    baseline, test_rows = baseline_rmse(env, spec)
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
        failures += brief_use_cases(env, rows=300, n_trials=4, seed=seed)
        for failure in failures[len(story.failures) :]:
            print(f"FAILED {failure}")
    print()
    print("\n".join(use_case_table(env)))
    print()
    print(
        f"done in {time.monotonic() - started:.0f}s. History: mlops history bigmart_sales; "
        "UI: make dev (http://127.0.0.1:3000)"
    )
    return 1 if failures else 0
