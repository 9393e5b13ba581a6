"""One ingestion ledger for both kinds of partitions: many landing days, none requested twice,
and the sensor's and refresh's work counted, not timed: it does not grow with the run history.

The requested ranges are ingested the way ``raw_data`` records them (rows read with
``read_days``, ledger entries written with ``record_files``), without running the whole ingest
job a thousand times; the sensor and refresh are the real functions they call.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets.ingest.batches import next_cursor, open_from, pending_ranges, read_days
from mlops_assets.ingest.days import days_between
from mlops_assets.ingest.landing import LandingZone
from mlops_assets.ingest.ledger import record_files
from mlops_assets.specs import use_case_specs
from mlops_assets.storage.objectstore import LocalObjectStore, ObjectInfo

START = dt.date(2020, 1, 1)


class CountingStore(LocalObjectStore):
    """A local store that counts listings and the objects they return."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.listings = 0
        self.listed = 0

    def list(self, prefix: str = "", start_after: str | None = None) -> list[ObjectInfo]:
        found = super().list(prefix, start_after)
        self.listings += 1
        self.listed += len(found)
        return found


def land_days(landing: LandingZone, spec, count: int, event_dated: bool) -> list[str]:
    days = [(START + dt.timedelta(days=i)).isoformat() for i in range(count)]
    for day in days:
        if event_dated:  # a daily extract of that day's sales
            body = f"id,date,sales\nFOODS_1_{day},{day},3\n"
        else:
            body = "Item_Identifier,Outlet_Identifier\nFDA15,OUT049\n"
        landing.land(spec.name, day, "extract.csv", body.encode())
    return days


def ingest(landing, lake, spec, batches) -> None:
    """What raw_data records for runs over ``batches``' days (read together: one listing)."""
    days = sorted({day for batch in batches for day in days_between(batch.first, batch.last)})
    found = read_days(landing, lake, spec, days)
    record_files(lake, spec, found.entries)


def untouched_run_history(instance: dg.DagsterInstance, monkeypatch) -> Counter:
    """Counts every query of the instance's runs (none is expected)."""
    calls: Counter = Counter()
    for name in ("get_runs", "get_run_records", "get_run_ids", "get_runs_count"):
        original = getattr(instance, name)

        def counted(*args, _name=name, _original=original, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(instance, name, counted)
    return calls


@pytest.mark.parametrize(
    ("use_case", "count", "event_dated"), [("m5_sales", 1000, True), ("bigmart_sales", 300, False)]
)
def test_many_landing_days_are_each_requested_once(
    tmp_path: Path, monkeypatch, use_case: str, count: int, event_dated: bool
) -> None:
    spec = use_case_specs()[use_case].model_copy(
        update={
            "partitions": use_case_specs()[use_case].partitions.model_copy(
                update={"start_date": START}
            )
        }
    )
    landing_store, lake = CountingStore(tmp_path / "landing"), CountingStore(tmp_path / "lake")
    landing = LandingZone(landing_store)
    instance = dg.DagsterInstance.ephemeral()
    for i in range(50):  # a run history the sensor and refresh must not read
        instance.add_run(dg.DagsterRun(job_name=f"{use_case}__ingest", run_id=f"run-{i:04d}"))
    queries = untouched_run_history(instance, monkeypatch)
    partitions = (START.isoformat(), (START + dt.timedelta(days=count + 10)).isoformat())
    days = land_days(landing, spec, count, event_dated)

    # The sensor's first tick: every landing day is pending, each its own range.
    cursor: dict[str, list[str]] = {}
    first = pending_ranges(landing, lake, spec, partitions, known=cursor, since=open_from(cursor))
    requested = Counter(
        day for batch in first.ranges for day in days_between(batch.first, batch.last)
    )
    assert sorted(requested) == days and set(requested.values()) == {1}
    cursor = next_cursor(cursor, first.handled)
    assert len(cursor) == 2  # only the newest landing day and the one before stay open
    ingest(landing, lake, spec, first.ranges)

    # Later ticks and a refresh request nothing again, however long the run history.
    landing_store.listed = lake.listed = 0
    tick = pending_ranges(landing, lake, spec, partitions, known=cursor, since=open_from(cursor))
    assert tick.ranges == []
    quiet_tick = landing_store.listed + lake.listed
    assert quiet_tick <= 6  # two open landing days' files and ledger entries, not 2 x count
    refreshing = pending_ranges(landing, lake, spec, partitions)
    assert refreshing.ranges == []
    assert queries == Counter()  # neither ever read a run

    # A late file for the newest day is one more run of that day only.
    landing.land(
        spec.name,
        days[-1],
        "late.csv",
        (landing_store.root / spec.name / days[-1] / "extract.csv").read_bytes(),
    )
    late = pending_ranges(landing, lake, spec, partitions, known=cursor, since=open_from(cursor))
    assert [(b.first, b.last) for b in late.ranges] == [(days[-1], days[-1])]


def test_a_tick_with_nothing_new_still_windows_the_next(tmp_path: Path) -> None:
    """A sensor that starts on an ingested landing zone (an empty cursor: a new sensor, or one
    of the earlier format) lists everything once, then only the newest landing days."""
    spec = use_case_specs()["bigmart_sales"]
    landing, lake = LandingZone(CountingStore(tmp_path / "landing")), CountingStore(tmp_path / "l")
    land_days(landing, spec, 30, event_dated=False)
    partitions = (START.isoformat(), (START + dt.timedelta(days=40)).isoformat())
    first = pending_ranges(landing, lake, spec, partitions)
    ingest(landing, lake, spec, first.ranges)
    quiet = pending_ranges(landing, lake, spec, partitions, known={}, since=None)
    assert quiet.ranges == []
    cursor = next_cursor({}, quiet.handled)
    assert cursor == {(START + dt.timedelta(days=29)).isoformat(): []}
    assert open_from(cursor) == (START + dt.timedelta(days=28)).isoformat()
