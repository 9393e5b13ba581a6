"""The landing sensor on a bucket lists only the open days, not the whole landing prefix."""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
import pytest

from mlops_assets import names
from mlops_assets.components.resources import LandingZone, ObjectStorage
from mlops_assets.specs import use_case_specs
from mlops_assets.storage.objectstore import S3ObjectStore
from mlops_assets_tests.harness.records import CSV, tick
from mlops_assets_tests.harness.s3 import SeaweedS3

pytestmark = pytest.mark.integration


def days_of(requests: list[dg.RunRequest]) -> list[str]:
    """The days requested: every request is a range, here of one day."""
    ranges = [(r.tags[names.RANGE_START_TAG], r.tags[names.RANGE_END_TAG]) for r in requests]
    assert all(first == last for first, last in ranges), ranges
    return [first for first, _ in ranges]


@pytest.mark.usefixtures("mlops_home")
def test_ticks_list_only_recent_days_of_the_bucket(
    s3_server: SeaweedS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = use_case_specs()["bigmart_sales"]
    s3_server.create_bucket("sensor")

    def bucket(prefix: str) -> ObjectStorage:
        return ObjectStorage(
            uri=f"s3://sensor/{prefix}",
            endpoint_url=s3_server.endpoint_url,
            access_key_id=s3_server.access_key,
            secret_access_key=s3_server.secret_key,
        )

    landing, lake = LandingZone(storage=bucket("landing")), bucket("storage")
    days = [(dt.date(2025, 1, 1) + dt.timedelta(days=n)).isoformat() for n in range(30)]
    for day in days:
        landing.zone().land(spec.name, day, "batch.csv", CSV)

    calls: list[tuple[str, str | None, list[str]]] = []
    original = S3ObjectStore.list

    def recording(self, prefix: str = "", start_after: str | None = None):
        found = original(self, prefix, start_after)
        calls.append((prefix, start_after, [info.key for info in found]))
        return found

    def listed() -> list[tuple[str | None, list[str]]]:
        """The landing zone's listings (a tick also lists the ingestion ledger)."""
        return [(after, keys) for prefix, after, keys in calls if prefix == f"{spec.name}/"]

    monkeypatch.setattr(S3ObjectStore, "list", recording)
    instance = dg.DagsterInstance.ephemeral()

    first = tick(spec, landing, lake, instance, None)
    assert len(first.run_requests) == 30 and len(listed()[-1][1]) == 30

    landing.zone().land(spec.name, days[-2], "late.csv", CSV)  # late, for the day before the newest
    landing.zone().land(spec.name, "2025-01-31", "batch.csv", CSV)  # a new day
    calls.clear()
    second = tick(spec, landing, lake, instance, first.cursor)
    assert sorted(days_of(second.run_requests)) == ["2025-01-29", "2025-01-31"]
    [(start_after, keys)] = listed()
    assert start_after == f"{spec.name}/2025-01-29/"
    assert keys == [
        f"{spec.name}/2025-01-29/batch.csv",
        f"{spec.name}/2025-01-29/late.csv",
        f"{spec.name}/2025-01-30/batch.csv",
        f"{spec.name}/2025-01-31/batch.csv",
    ]
    ledger = names.ingestion_prefix(spec.name)
    assert [(p, a) for p, a, _ in calls if p == ledger] == [(ledger, f"{ledger}2025-01-29")]
    assert sorted(json.loads(second.cursor)) == ["2025-01-30", "2025-01-31"]
