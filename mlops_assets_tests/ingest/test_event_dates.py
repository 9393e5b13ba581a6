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

from mlops_assets.ingest.event_dates import (
    LANDING_DAYS_TAG,
    RANGE_END_TAG,
    RANGE_START_TAG,
    pending_range,
)
from mlops_assets.specs import use_case_specs

FIRST, LAST = dt.date(2025, 1, 1), dt.date(2025, 2, 9)


def land(day: str, frame: pd.DataFrame, name: str = "history.csv") -> None:
    from mlops_assets.ops.launch import initialized_resource
    from mlops_assets.resources import resources_for_environment

    with initialized_resource(resources_for_environment(), "landing") as landing:
        landing.land("m5_sales", day, name, frame.to_csv(index=False).encode())


def tick(definitions: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None):
    from mlops_assets.ops.demo import evaluate_sensor

    return evaluate_sensor(definitions, instance, "m5_sales__landing_sensor", cursor)


def test_history_file_is_one_run_over_its_dates(mlops_home: Path) -> None:
    from mlops_assets.generators import get_generator
    from mlops_assets.ops.launch import execute, load_definitions
    from mlops_assets.components.use_case import ingest_job_name

    spec = use_case_specs()["m5_sales"]
    generator = get_generator("m5_sales")
    history = generator.history(FIRST, LAST, seed=1)
    land("2025-02-10", history)
    definitions, instance = load_definitions(), dg.DagsterInstance.ephemeral()

    requests, cursor = tick(definitions, instance, None)
    assert len(requests) == 1
    request = requests[0]
    assert request.partition_key is None
    assert (request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]) == (
        FIRST.isoformat(),
        LAST.isoformat(),
    )
    assert list(json.loads(request.tags[LANDING_DAYS_TAG])) == ["2025-02-10"]
    assert tick(definitions, instance, cursor)[0] == []  # the same files: no second run

    run = execute(definitions, ingest_job_name(spec), instance, tags=dict(request.tags))
    assert run.success, run.errors

    # Every date of the file is a partition, stored once, all by that one run.
    days = [(FIRST + dt.timedelta(days=n)).isoformat() for n in range((LAST - FIRST).days + 1)]
    storage = mlops_home / "storage" / "m5_sales"
    for asset in ("raw_data", "clean_data"):
        assert sorted(p.stem for p in (storage / asset).glob("*.parquet")) == days
        key = dg.AssetKey(["m5_sales", asset])
        assert sorted(instance.get_materialized_partitions(key)) == days
    runs = instance.get_runs(dg.RunsFilter(job_name=ingest_job_name(spec)))
    assert [r.run_id for r in runs] == [run.run_id]
    day = pd.read_parquet(storage / "clean_data" / "2025-01-15.parquet")
    assert set(day["date"].dt.strftime("%Y-%m-%d")) == {"2025-01-15"}
    assert len(day) == len(history[history["date"] == "2025-01-15"])

    # Handled: neither a fresh sensor (empty cursor) nor `mlops refresh` asks for it again.
    assert tick(definitions, instance, None)[0] == []
    from mlops_assets.ops.launch import initialized_resource

    with initialized_resource(definitions.resources or {}, "landing") as landing:
        assert pending_range(landing, spec, instance, ingest_job_name(spec)) == (None, {})

    # A later daily file: one run over its own date only; the partition keeps other files' rows.
    next_day = LAST + dt.timedelta(days=1)
    land("2025-02-11", generator.generate(0, next_day, seed=1), name="daily.csv")
    requests, cursor = tick(definitions, instance, cursor)
    assert [(r.tags[RANGE_START_TAG], r.tags[RANGE_END_TAG]) for r in requests] == [
        (next_day.isoformat(), next_day.isoformat())
    ]
    # Its run reads the daily file only: the index shows the history file has no row that day.
    daily = execute(definitions, ingest_job_name(spec), instance, tags=dict(requests[0].tags))
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
    rerun = execute(definitions, ingest_job_name(spec), instance, tags=dict(requests[0].tags))
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
    outcome = refresh(spec, load_definitions(), instance, train=False)
    assert outcome.success and [r.partition for r in outcome.ingested] == [
        f"{FIRST.isoformat()}..{FIRST.isoformat()}"
    ]
    clean = pd.read_parquet(
        mlops_home / "storage" / "m5_sales" / "clean_data" / "2025-01-01.parquet"
    )
    assert len(clean) == len(day)
    assert refresh(spec, load_definitions(), instance, train=False).ingested == []


def test_range_keeps_to_the_partitions(mlops_home: Path) -> None:
    """Rows dated before the spec's first partition or after today ask for no partition."""
    from mlops_assets.ingest.event_dates import date_range_of
    from mlops_assets.ops.launch import initialized_resource
    from mlops_assets.ingest.days import today
    from mlops_assets.resources import resources_for_environment

    spec = use_case_specs()["m5_sales"]
    dates = ["2010-12-31", "2011-02-01", "not a date", (today() + dt.timedelta(days=3)).isoformat()]
    land("2011-02-02", pd.DataFrame({"id": "x", "date": dates, "sales": 1}))
    with initialized_resource(resources_for_environment(), "landing") as landing:
        files = landing.files_for("m5_sales", "2011-02-02")
        assert date_range_of(landing, spec, files) == ("2011-02-01", "2011-02-01")
