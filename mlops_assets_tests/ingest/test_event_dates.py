"""Event-date partitions: a landed history file becomes many partitions in ONE run.

The landing layout is the usual ``<landing>/m5_sales/<landing day>/<file>``; the rows' ``date``
column decides their partitions. The sensor asks for one run over the file's date range
(Dagster's single-run backfill), never one run per day, and never twice for the same files.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import dagster as dg
import pandas as pd

from mlops_assets import names
from mlops_assets.components.partitions import partition_bounds
from mlops_assets.environment import Environment
from mlops_assets.ingest.batches import pending_ranges
from mlops_assets.specs import use_case_specs

FIRST, LAST = dt.date(2025, 1, 1), dt.date(2025, 2, 9)


def land(day: str, frame: pd.DataFrame, name: str = "history.csv") -> None:
    landing = Environment.from_env().landing_zone()
    landing.land("m5_sales", day, name, frame.to_csv(index=False).encode())


def rows_dated(dates: list[str]) -> pd.DataFrame:
    """One series' complete row (every contract column, calendar included) on each date."""
    from mlops_assets.generators import get_generator

    row = get_generator("m5_sales").history(FIRST, FIRST, seed=1).iloc[[0]]
    return pd.concat([row] * len(dates), ignore_index=True).assign(date=dates)


def pending(spec) -> list[tuple[str, str]]:
    """The ranges ``mlops refresh`` would ingest now (it lists every landing day)."""
    env = Environment.from_env()
    found = pending_ranges(env.landing_zone(), env.lake(), spec, partition_bounds(spec))
    return [(batch.first, batch.last) for batch in found.ranges]


def range_of(request: dg.RunRequest) -> tuple[str, str]:
    return request.tags[names.RANGE_START_TAG], request.tags[names.RANGE_END_TAG]


def tick(definitions: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None):
    from mlops_assets.ops.demo import evaluate_sensor

    return evaluate_sensor(definitions, instance, names.landing_sensor("m5_sales"), cursor)


def test_history_file_is_one_run_over_its_dates(mlops_home: Path) -> None:
    from mlops_assets.generators import get_generator
    from mlops_assets.ops.launch import execute, load_definitions

    spec = use_case_specs()["m5_sales"]
    generator = get_generator("m5_sales")
    history = generator.history(FIRST, LAST, seed=1)
    land("2025-02-10", history)
    definitions, instance = load_definitions(), dg.DagsterInstance.ephemeral()

    requests, cursor = tick(definitions, instance, None)
    assert len(requests) == 1
    request = requests[0]
    assert request.partition_key is None
    assert range_of(request) == (FIRST.isoformat(), LAST.isoformat())
    assert list(json.loads(cursor)) == ["2025-02-10"]  # the landing day, with the file's digest
    assert tick(definitions, instance, cursor)[0] == []  # the same files: no second run

    run = execute(definitions, names.ingest_job(spec.name), instance, tags=dict(request.tags))
    assert run.success, run.errors

    # Every date of the file is a partition, stored once, all by that one run.
    days = [(FIRST + dt.timedelta(days=n)).isoformat() for n in range((LAST - FIRST).days + 1)]
    storage = mlops_home / "storage" / "m5_sales"
    for asset in ("raw_data", "clean_data"):
        assert sorted(p.stem for p in (storage / asset).glob("*.parquet")) == days
        key = dg.AssetKey(["m5_sales", asset])
        assert sorted(instance.get_materialized_partitions(key)) == days
    runs = instance.get_runs(dg.RunsFilter(job_name=names.ingest_job(spec.name)))
    assert [r.run_id for r in runs] == [run.run_id]
    day = pd.read_parquet(storage / "clean_data" / "2025-01-15.parquet")
    assert set(day["date"].dt.strftime("%Y-%m-%d")) == {"2025-01-15"}
    assert len(day) == len(history[history["date"] == "2025-01-15"])

    # Handled: neither a fresh sensor (empty cursor) nor `mlops refresh` asks for it again.
    assert tick(definitions, instance, None)[0] == []
    assert pending(spec) == []

    # A later daily file: one run over its own date only; the partition keeps other files' rows.
    next_day = LAST + dt.timedelta(days=1)
    land("2025-02-11", generator.generate(0, next_day, seed=1), name="daily.csv")
    requests, cursor = tick(definitions, instance, cursor)
    assert [range_of(r) for r in requests] == [(next_day.isoformat(), next_day.isoformat())]
    # Its run reads the daily file only: the index shows the history file has no row that day.
    daily = execute(definitions, names.ingest_job(spec.name), instance, tags=dict(requests[0].tags))
    assert daily.success, daily.errors
    event = instance.get_latest_materialization_event(dg.AssetKey(["m5_sales", "raw_data"]))
    assert event is not None and event.asset_materialization is not None
    metadata = event.asset_materialization.metadata
    assert [Path(key).name for key in metadata["files"].value] == ["daily.csv"]
    assert metadata["files_skipped_by_index"].value == 1
    stored = pd.read_parquet(storage / "raw_data" / f"{next_day}.parquet")
    assert len(stored) == len(generator.generate(0, next_day, seed=1))
    # A corrected history file (a new version) is read again.
    land("2025-02-10", history.assign(sales=history["sales"] + 1))
    rerun = execute(definitions, names.ingest_job(spec.name), instance, tags=dict(requests[0].tags))
    assert rerun.success, rerun.errors
    event = instance.get_latest_materialization_event(dg.AssetKey(["m5_sales", "raw_data"]))
    files = event.asset_materialization.metadata["files"].value
    assert sorted(Path(key).name for key in files) == ["daily.csv", "history.csv"]


def test_a_day_landed_in_two_files_keeps_both(mlops_home: Path) -> None:
    from mlops_assets.generators import get_generator
    from mlops_assets.ops.launch import load_definitions, refresh

    spec = use_case_specs()["m5_sales"]
    day = get_generator("m5_sales").generate(0, FIRST, seed=1)
    land("2025-01-02", day.iloc[:10], name="a.csv")
    land("2025-01-03", day.iloc[10:], name="b.csv")
    instance = dg.DagsterInstance.ephemeral()
    env = Environment.from_env()
    outcome = refresh(spec, env, load_definitions(), instance, train=False)
    # One run over the one day both files' rows fall on (a one-day range is named by its day).
    assert outcome.success and [r.partition for r in outcome.ingested] == [FIRST.isoformat()]
    clean = pd.read_parquet(
        mlops_home / "storage" / "m5_sales" / "clean_data" / "2025-01-01.parquet"
    )
    assert len(clean) == len(day)
    assert refresh(spec, env, load_definitions(), instance, train=False).ingested == []


def test_range_keeps_to_the_partitions(mlops_home: Path) -> None:
    """Rows dated before the spec's first partition or after today ask for no partition."""
    from mlops_assets.ingest.batches import file_span
    from mlops_assets.ingest.days import today

    spec = use_case_specs()["m5_sales"]
    dates = ["2010-12-31", "2011-02-01", "not a date", (today() + dt.timedelta(days=3)).isoformat()]
    land("2011-02-02", rows_dated(dates))
    assert pending(spec) == [("2011-02-01", "2011-02-01")]
    landing = Environment.from_env().landing_zone()
    [info] = landing.files_for("m5_sales", "2011-02-02")
    assert file_span(landing, info, spec, within=partition_bounds(spec)) == (
        "2011-02-01",
        "2011-02-01",
    )
    # A file with no row inside the partitions asks for no run, and says why.
    land("2011-02-03", rows_dated(["2010-12-30"]), "old.csv")
    env = Environment.from_env()
    found = pending_ranges(env.landing_zone(), env.lake(), spec, partition_bounds(spec))
    assert [(r.first, r.last) for r in found.ranges] == [("2011-02-01", "2011-02-01")]
    assert found.unplaced == {
        "m5_sales/2011-02-03/old.csv": "its rows are dated 2010-12-30..2010-12-30, before the "
        "first partition 2011-01-29"
    }


def test_a_range_says_it_started_and_what_it_read(mlops_home: Path) -> None:
    """A history file is one run that can take minutes: refresh says it started, and the run's
    log says what raw_data read (clean_data logs ``cleaned n/N days`` every 10 s)."""
    from mlops_assets.generators import get_generator
    from mlops_assets.ops.launch import load_definitions, refresh

    spec = use_case_specs()["m5_sales"]
    generator = get_generator("m5_sales")
    days = pd.concat([generator.generate(0, FIRST + dt.timedelta(days=n), seed=1) for n in (0, 1)])
    land("2025-01-03", days)
    instance = dg.DagsterInstance.ephemeral()
    lines: list[str] = []
    env = Environment.from_env()
    outcome = refresh(spec, env, load_definitions(), instance, train=False, log=lines.append)
    assert outcome.success
    label = f"{FIRST}..{FIRST + dt.timedelta(days=1)}"
    assert lines[0] == f"ingest m5_sales {label} (1 file): running"
    assert lines[1].startswith(f"ingest m5_sales {label}: ok (run ")
    messages = [e.user_message for e in instance.all_logs(outcome.ingested[0].run_id)]
    assert any(
        m.startswith("read 1 file (0 skipped by the index): ")
        and m.endswith("rows on 2 of the run's 2 days")
        for m in messages
    )


def test_a_run_over_days_where_nothing_landed_succeeds_and_leaves_them_missing(
    mlops_home: Path,
) -> None:
    """The UI's *Materialize all -> Missing* on a fresh instance: one run over the empty days
    before the first landed one. It succeeds, stores and materializes nothing (the days stay
    missing, so a file landed for them later is still ingested), and its log says why."""
    from mlops_assets.generators import get_generator
    from mlops_assets.ops.launch import execute, load_definitions

    spec = use_case_specs()["m5_sales"]
    land("2025-01-02", get_generator("m5_sales").generate(0, FIRST, seed=1))
    definitions, instance = load_definitions(), dg.DagsterInstance.ephemeral()
    job = names.ingest_job(spec.name)
    raw = dg.AssetKey(["m5_sales", "raw_data"])

    # Nothing anywhere holds rows of these days (the landed file's rows are on FIRST).
    empty = {names.RANGE_START_TAG: "2024-03-01", names.RANGE_END_TAG: "2024-03-31"}
    run = execute(definitions, job, instance, tags=empty)
    assert run.success, run.errors
    assert instance.get_materialized_partitions(raw) == set()
    assert not (mlops_home / "storage" / "m5_sales" / "raw_data").exists()
    records = instance.all_logs(run.run_id)
    assert not [r for r in records if r.dagster_event and r.dagster_event.is_step_failure]
    messages = [r.user_message for r in records]
    assert any(
        m.startswith("no landed row falls on 2024-03-01..2024-03-31: nothing to ingest; these 31 ")
        for m in messages
    ), messages

    # The landed day is then ingested as usual: the empty run took nothing from it.
    day = {names.RANGE_START_TAG: FIRST.isoformat(), names.RANGE_END_TAG: FIRST.isoformat()}
    assert execute(definitions, job, instance, tags=day).success
    assert instance.get_materialized_partitions(raw) == {FIRST.isoformat()}

    # A file whose rows carry no readable date is not "nothing": its run fails its checks.
    land("2025-03-02", rows_dated(["not a date", "2025-13-45"]), "undated.csv")
    later = {names.RANGE_START_TAG: "2025-03-01", names.RANGE_END_TAG: "2025-03-02"}
    failed = execute(definitions, job, instance, tags=later)
    assert not failed.success
    assert "row_count" in " ".join(failed.errors), failed.errors


def test_a_run_with_no_file_landed_at_all_succeeds(mlops_home: Path) -> None:
    from mlops_assets.ops.launch import execute, load_definitions

    definitions, instance = load_definitions(), dg.DagsterInstance.ephemeral()
    run = execute(
        definitions,
        names.ingest_job("bigmart_sales"),
        instance,
        tags={names.RANGE_START_TAG: "2024-01-01", names.RANGE_END_TAG: "2024-01-07"},
    )
    assert run.success, run.errors
    messages = [r.user_message for r in instance.all_logs(run.run_id)]
    assert any(
        "no files landed for 2024-01-01..2024-01-07" in m and "nothing to ingest" in m
        for m in messages
    ), messages
    clean = dg.AssetKey(["bigmart_sales", "clean_data"])
    assert instance.get_materialized_partitions(clean) == set()
