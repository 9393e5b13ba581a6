"""The landing sensor's cursor: one run per new set of files in a day, never two for the same."""

import json
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets.ingest.landing import LandingZone
from mlops_assets.ingest.sensors import pending_days
from mlops_assets.ingest.days import today
from mlops_assets.specs import use_case_specs
from mlops_assets.components.resources import ObjectStorage
from mlops_assets_tests.harness.records import CSV, tick


@pytest.fixture
def spec():
    return use_case_specs()["bigmart_sales"]


@pytest.fixture
def landing(tmp_path: Path) -> LandingZone:
    return LandingZone(storage=ObjectStorage(uri=str(tmp_path / "landing")))


def test_one_run_per_new_file_never_twice(spec, landing: LandingZone) -> None:
    instance = dg.DagsterInstance.ephemeral()
    landing.land(spec.name, "2025-02-01", "a.csv", CSV)

    first = tick(spec, landing, instance, None)
    assert [r.partition_key for r in first.run_requests] == ["2025-02-01"]
    cursor = first.cursor
    assert set(json.loads(cursor)) == {"2025-02-01"}

    again = tick(spec, landing, instance, cursor)
    assert again.run_requests == []
    assert again.cursor in (None, cursor)

    landing.land(spec.name, "2025-02-01", "b.csv", CSV)
    second = tick(spec, landing, instance, cursor)
    assert [r.partition_key for r in second.run_requests] == ["2025-02-01"]
    assert second.run_requests[0].run_key != first.run_requests[0].run_key
    assert json.loads(second.cursor)["2025-02-01"] != json.loads(cursor)["2025-02-01"]

    assert tick(spec, landing, instance, second.cursor).run_requests == []


def test_each_new_day_gets_its_own_run(spec, landing: LandingZone) -> None:
    instance = dg.DagsterInstance.ephemeral()
    for day in ["2025-02-01", "2025-02-02", "2025-02-03"]:
        landing.land(spec.name, day, "batch.csv", CSV)
    result = tick(spec, landing, instance, None)
    assert sorted(r.partition_key for r in result.run_requests) == [
        "2025-02-01",
        "2025-02-02",
        "2025-02-03",
    ]


def test_ignores_what_is_not_a_landing_day(spec, landing: LandingZone) -> None:
    instance = dg.DagsterInstance.ephemeral()
    landing.land(spec.name, "not-a-date", "a.csv", CSV)
    landing.land(spec.name, "2025-02-01", "README.md", b"notes")
    landing.land(spec.name, "1999-01-01", "a.csv", CSV)  # before the spec's first partition
    future = today().replace(year=today().year + 1).isoformat()
    landing.land(spec.name, future, "a.csv", CSV)
    assert tick(spec, landing, instance, None).run_requests == []


def test_days_already_ingested_are_not_requested(spec, landing: LandingZone) -> None:
    """A fresh cursor (a new deployment) does not re-run days whose files were ingested."""
    from mlops_assets.components.ingest import raw_key
    from mlops_assets.ingest.landing import fingerprint

    instance = dg.DagsterInstance.ephemeral()
    landing.land(spec.name, "2025-02-01", "a.csv", CSV)
    landing.land(spec.name, "2025-02-02", "a.csv", CSV)
    digest = fingerprint(landing.files_for(spec.name, "2025-02-01"))
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=raw_key(spec), partition="2025-02-01", metadata={"source_fingerprint": digest}
        )
    )
    assert list(pending_days(landing, spec, instance)) == ["2025-02-02"]
    assert [r.partition_key for r in tick(spec, landing, instance, None).run_requests] == [
        "2025-02-02"
    ]


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


def test_later_ticks_list_only_the_recent_days(spec, landing: LandingZone, listings) -> None:
    """After the first tick, a tick lists from the day before the newest day seen, not all."""
    instance = dg.DagsterInstance.ephemeral()
    days = [f"2025-02-{n:02d}" for n in range(1, 11)]
    for day in days:
        landing.land(spec.name, day, "batch.csv", CSV)

    first = tick(spec, landing, instance, None)
    assert sorted(r.partition_key for r in first.run_requests) == days
    assert listings[-1][1] is None  # a new sensor lists everything once
    assert sorted(json.loads(first.cursor)) == ["2025-02-09", "2025-02-10"]  # only open days

    listings.clear()
    assert tick(spec, landing, instance, first.cursor).run_requests == []
    [(prefix, start_after, keys)] = listings
    assert (prefix, start_after) == (f"{spec.name}/", f"{spec.name}/2025-02-09/")
    assert keys == [f"{spec.name}/2025-02-09/batch.csv", f"{spec.name}/2025-02-10/batch.csv"]


def test_late_files_in_open_days_are_seen_settled_days_are_left_to_refresh(
    spec, landing: LandingZone
) -> None:
    instance = dg.DagsterInstance.ephemeral()
    for day in ["2025-02-01", "2025-02-05", "2025-02-06"]:
        landing.land(spec.name, day, "batch.csv", CSV)
    cursor = tick(spec, landing, instance, None).cursor

    landing.land(spec.name, "2025-02-05", "late.csv", CSV)  # the day before the newest: open
    landing.land(spec.name, "2025-02-01", "late.csv", CSV)  # settled: the sensor does not look
    late = tick(spec, landing, instance, cursor)
    assert [r.partition_key for r in late.run_requests] == ["2025-02-05"]

    landing.land(spec.name, "2025-02-07", "batch.csv", CSV)  # a new day moves the window on
    new_day = tick(spec, landing, instance, late.cursor)
    assert [r.partition_key for r in new_day.run_requests] == ["2025-02-07"]
    assert sorted(json.loads(new_day.cursor)) == ["2025-02-06", "2025-02-07"]

    # `mlops refresh` lists every day, so the late file of a settled day is not lost.
    assert "2025-02-01" in pending_days(landing, spec, instance)


def test_a_cursor_of_every_day_is_pruned_to_the_open_days(spec, landing: LandingZone) -> None:
    """A cursor written before listings were windowed (every day ever seen) still works."""
    from mlops_assets.ingest.landing import fingerprint

    instance = dg.DagsterInstance.ephemeral()
    days = ["2025-02-01", "2025-02-02", "2025-02-03"]
    for day in days:
        landing.land(spec.name, day, "batch.csv", CSV)
    old = {day: fingerprint(landing.files_for(spec.name, day)) for day in days}
    result = tick(spec, landing, instance, json.dumps(old))
    assert result.run_requests == []
    assert sorted(json.loads(result.cursor)) == ["2025-02-02", "2025-02-03"]
