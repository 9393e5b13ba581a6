"""The landing sensor's cursor: one run per new set of files in a day, never two for the same."""

import json
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets.ingest.landing import LandingZone
from mlops_assets.ingest.sensors import build_landing_sensor, pending_days
from mlops_assets.partitions import today
from mlops_assets.resources import resources_for_environment
from mlops_assets.specs import load_specs
from mlops_assets.storage.resources import ObjectStorage
from mlops_assets.use_case import build_use_case

CSV = b"Item_Identifier,Item_MRP\nFDA15,249.8\n"


@pytest.fixture
def spec():
    return load_specs()["bigmart_sales"]


@pytest.fixture
def landing(tmp_path: Path) -> LandingZone:
    return LandingZone(storage=ObjectStorage(uri=str(tmp_path / "landing")))


def tick(spec, landing: LandingZone, instance: dg.DagsterInstance, cursor: str | None):
    parts = build_use_case(spec)
    definitions = dg.Definitions(
        assets=parts.assets, jobs=parts.jobs, resources=resources_for_environment()
    )
    sensor = build_landing_sensor(spec, "bigmart_sales__ingest")
    with dg.build_sensor_context(
        cursor=cursor, instance=instance, resources={"landing": landing}, definitions=definitions
    ) as context:
        return sensor.evaluate_tick(context)


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
    from mlops_assets.ingest.assets import raw_key
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
