"""The landing sensor's cursor: one run per new set of files in a day, never two for the same.

Every run request carries a partition range (``names.RANGE_START_TAG``/``RANGE_END_TAG``), a
one-day range for a landing-date use case's day. The cursor keeps, per landing day still open to
late files, the digests of the files requested; the ingestion ledger in the lake says what was
ingested.
"""

import datetime as dt
import json
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets import names
from mlops_assets.components.partitions import partition_bounds
from mlops_assets.components.resources import LandingZone, ObjectStorage
from mlops_assets.ingest.batches import parse_cursor, pending_ranges
from mlops_assets.ingest.days import today
from mlops_assets.ingest.ledger import IngestedFile, file_digest, record_files
from mlops_assets.specs import use_case_specs
from mlops_assets_tests.harness.records import CSV
from mlops_assets_tests.harness.records import tick as sensor_tick


@pytest.fixture
def spec():
    return use_case_specs()["bigmart_sales"]


@pytest.fixture
def landing(tmp_path: Path) -> LandingZone:
    return LandingZone(storage=ObjectStorage(uri=str(tmp_path / "landing")))


@pytest.fixture
def lake(tmp_path: Path) -> ObjectStorage:
    return ObjectStorage(uri=str(tmp_path / "storage"))


@pytest.fixture
def tick(spec, landing: LandingZone, lake: ObjectStorage):
    """One tick of the sensor on this test's landing zone and lake."""
    instance = dg.DagsterInstance.ephemeral()
    return lambda cursor: sensor_tick(spec, landing, lake, instance, cursor)


def land(landing: LandingZone, spec, day: str, name: str, data: bytes = CSV) -> None:
    landing.zone().land(spec.name, day, name, data)


def days_of(requests: list[dg.RunRequest]) -> list[str]:
    """The one-day ranges requested (every request is a range, here of one day)."""
    ranges = [(r.tags[names.RANGE_START_TAG], r.tags[names.RANGE_END_TAG]) for r in requests]
    assert all(r.partition_key is None for r in requests)
    assert all(first == last for first, last in ranges), ranges
    return [first for first, _ in ranges]


def record_ingested(landing: LandingZone, lake: ObjectStorage, spec, day: str) -> None:
    """Write ingestion ledger entries for a day's files, as its ``raw_data`` run would."""
    entries = [
        IngestedFile(landing_day=day, digest=file_digest(info), first=day, last=day, key=info.key)
        for info in landing.zone().files_for(spec.name, day)
    ]
    record_files(lake.store(), spec, entries)


def refresh_days(landing: LandingZone, lake: ObjectStorage, spec) -> list[str]:
    """The ranges ``mlops refresh`` would ingest (it lists every landing day)."""
    found = pending_ranges(landing.zone(), lake.store(), spec, partition_bounds(spec))
    return [batch.label for batch in found.ranges]


def test_one_run_per_new_file_never_twice(spec, landing: LandingZone, tick) -> None:
    land(landing, spec, "2025-02-01", "a.csv")

    first = tick(None)
    assert days_of(first.run_requests) == ["2025-02-01"]
    cursor = first.cursor
    assert set(json.loads(cursor)) == {"2025-02-01"}

    again = tick(cursor)
    assert again.run_requests == []
    assert again.cursor in (None, cursor)

    land(landing, spec, "2025-02-01", "b.csv")
    second = tick(cursor)
    assert days_of(second.run_requests) == ["2025-02-01"]
    assert second.run_requests[0].run_key != first.run_requests[0].run_key
    assert json.loads(second.cursor)["2025-02-01"] != json.loads(cursor)["2025-02-01"]
    assert len(json.loads(second.cursor)["2025-02-01"]) == 2  # both files' digests

    assert tick(second.cursor).run_requests == []


def test_each_new_day_gets_its_own_run(spec, landing: LandingZone, tick) -> None:
    for day in ["2025-02-01", "2025-02-02", "2025-02-03"]:
        land(landing, spec, day, "batch.csv")
    result = tick(None)
    assert sorted(days_of(result.run_requests)) == ["2025-02-01", "2025-02-02", "2025-02-03"]


def test_ignores_what_is_not_a_landing_day(spec, landing: LandingZone, tick) -> None:
    land(landing, spec, "not-a-date", "a.csv")
    land(landing, spec, "2025-02-01", "README.md", b"notes")
    land(landing, spec, "1999-01-01", "a.csv")  # before the spec's first partition
    future = today().replace(year=today().year + 1).isoformat()
    land(landing, spec, future, "a.csv")
    assert tick(None).run_requests == []


def test_days_already_ingested_are_not_requested(
    spec, landing: LandingZone, lake: ObjectStorage, tick
) -> None:
    """A fresh cursor (a new deployment) does not re-run days whose files were ingested."""
    land(landing, spec, "2025-02-01", "a.csv")
    land(landing, spec, "2025-02-02", "a.csv")
    record_ingested(landing, lake, spec, "2025-02-01")
    assert refresh_days(landing, lake, spec) == ["2025-02-02"]
    assert days_of(tick(None).run_requests) == ["2025-02-02"]


@pytest.fixture
def listings(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str | None, list[str]]]:
    """Every listing of the local store: prefix, start_after and the keys returned."""
    from mlops_assets.storage.objectstore import LocalObjectStore

    calls: list[tuple[str, str | None, list[str]]] = []
    original = LocalObjectStore.list

    def recording(self, prefix: str = "", start_after: str | None = None):
        found = original(self, prefix, start_after)
        calls.append((prefix, start_after, [info.key for info in found]))
        return found

    monkeypatch.setattr(LocalObjectStore, "list", recording)
    return calls


def test_later_ticks_list_only_the_recent_days(spec, landing: LandingZone, tick, listings) -> None:
    """After the first tick, a tick lists from the day before the newest day seen, not all.

    That holds for both listings a tick makes: the landing zone, and the ingestion ledger.
    """
    days = [f"2025-02-{n:02d}" for n in range(1, 11)]
    for day in days:
        land(landing, spec, day, "batch.csv")
    ledger = names.ingestion_prefix(spec.name)

    def landing_listings():
        return [call for call in listings if call[0] == f"{spec.name}/"]

    first = tick(None)
    assert sorted(days_of(first.run_requests)) == days
    assert landing_listings()[-1][1] is None  # a new sensor lists everything once
    assert sorted(json.loads(first.cursor)) == ["2025-02-09", "2025-02-10"]  # only open days

    listings.clear()
    assert tick(first.cursor).run_requests == []
    [(prefix, start_after, keys)] = landing_listings()
    assert (prefix, start_after) == (f"{spec.name}/", f"{spec.name}/2025-02-09/")
    assert keys == [f"{spec.name}/2025-02-09/batch.csv", f"{spec.name}/2025-02-10/batch.csv"]
    assert [(p, s) for p, s, _ in listings if p == ledger] == [(ledger, f"{ledger}2025-02-09")]


def test_late_files_in_open_days_are_seen_settled_days_are_left_to_refresh(
    spec, landing: LandingZone, lake: ObjectStorage, tick
) -> None:
    for day in ["2025-02-01", "2025-02-05", "2025-02-06"]:
        land(landing, spec, day, "batch.csv")
    cursor = tick(None).cursor
    for day in ["2025-02-01", "2025-02-05", "2025-02-06"]:
        record_ingested(landing, lake, spec, day)  # their runs ingested them

    land(landing, spec, "2025-02-05", "late.csv")  # the day before the newest: open
    land(landing, spec, "2025-02-01", "late.csv")  # settled: the sensor does not look
    late = tick(cursor)
    assert days_of(late.run_requests) == ["2025-02-05"]

    land(landing, spec, "2025-02-07", "batch.csv")  # a new day moves the window on
    new_day = tick(late.cursor)
    assert days_of(new_day.run_requests) == ["2025-02-07"]
    assert sorted(json.loads(new_day.cursor)) == ["2025-02-06", "2025-02-07"]

    # `mlops refresh` lists every day, so the late file of a settled day is not lost.
    assert "2025-02-01" in refresh_days(landing, lake, spec)


def test_a_cursor_of_every_day_is_pruned_to_the_open_days(spec, landing: LandingZone, tick) -> None:
    """A cursor holding every day ever seen still works, and keeps only the open days."""
    days = ["2025-02-01", "2025-02-02", "2025-02-03"]
    for day in days:
        land(landing, spec, day, "batch.csv")
    every_day = {
        day: [file_digest(info) for info in landing.zone().files_for(spec.name, day)]
        for day in days
    }
    result = tick(json.dumps(every_day))
    assert result.run_requests == []
    assert sorted(json.loads(result.cursor)) == ["2025-02-02", "2025-02-03"]


def test_a_cursor_of_the_earlier_format_leaves_it_to_the_ledger(
    spec, landing: LandingZone, lake: ObjectStorage, tick
) -> None:
    """A cursor of one fingerprint per day (the earlier format) reads as empty.

    What was ingested is in the ingestion ledger (``mlops migrate`` builds it for an older
    home), so the days it records are not requested again, and a day it lacks is.
    """
    from mlops_assets.ingest.landing import fingerprint

    days = ["2025-02-01", "2025-02-02", "2025-02-03"]
    for day in days:
        land(landing, spec, day, "batch.csv")
    old = {day: fingerprint(landing.zone().files_for(spec.name, day)) for day in days}
    assert parse_cursor(json.dumps(old)) == {}
    for day in days[:2]:
        record_ingested(landing, lake, spec, day)
    assert days_of(tick(json.dumps(old)).run_requests) == ["2025-02-03"]


def test_a_file_landed_for_a_future_day_is_never_silent(
    spec, landing: LandingZone, lake: ObjectStorage, tick
) -> None:
    """A future landing day is reported on every tick, does not close today's folder, and is
    requested once its day has a partition (here: a later ``today`` in the partition bounds)."""
    now = today()
    tomorrow = (now + dt.timedelta(days=1)).isoformat()
    land(landing, spec, tomorrow, "early.csv")
    first = tick(None)
    assert first.run_requests == []
    [skip] = [first.skip_message]
    assert f"{spec.name}/{tomorrow}/early.csv: landed for {tomorrow}, after today" in skip
    assert tomorrow not in json.loads(first.cursor or "{}")  # the window stays at today

    land(landing, spec, now.isoformat(), "batch.csv")
    second = tick(first.cursor)
    assert days_of(second.run_requests) == [now.isoformat()]
    third = tick(second.cursor)
    assert third.run_requests == [] and "early.csv" in third.skip_message  # still said

    found = pending_ranges(
        landing.zone(),
        lake.store(),
        spec,
        (partition_bounds(spec)[0], tomorrow),
        known=parse_cursor(third.cursor),
    )
    assert [batch.label for batch in found.ranges] == [tomorrow]  # its day came


def test_a_day_before_the_first_partition_is_named(spec, landing: LandingZone, tick) -> None:
    land(landing, spec, "2023-06-01", "old.csv")
    result = tick(None)
    assert result.run_requests == []
    assert "landed for 2023-06-01, before the first partition 2024-01-01" in result.skip_message
    assert "no new files for bigmart_sales (every landing day" in result.skip_message


def test_a_folder_that_is_not_a_yyyy_mm_dd_day_is_not_a_landing_day(
    spec, landing: LandingZone, lake: ObjectStorage
) -> None:
    """``20250201`` is ISO 8601, but not a landing day: one strict reading of a day."""
    from mlops_assets.ingest.days import parse_day

    landing.zone().store().put_bytes(f"{spec.name}/20250201/a.csv", CSV)
    assert landing.zone().files_by_day(spec.name) == {}
    assert refresh_days(landing, lake, spec) == []
    assert parse_day("20250201") is None and parse_day("2025-02-30") is None
    assert parse_day("2025-02-01") == dt.date(2025, 2, 1)
