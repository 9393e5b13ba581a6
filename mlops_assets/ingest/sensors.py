"""The landing sensor: each new or changed landing day becomes one run of that day's partition.

The cursor maps each recent day to the fingerprint of its files when the sensor last handled it
(requested a run, or found that day ingested already), so the same files never produce a second
run, and a second file landing on the same day produces exactly one more (re-materialising the
day with all its files).

Listing only what is new: once the sensor has seen landing days, a tick lists only the days
from ``LATE_DAYS`` before the newest day it has seen onwards (one listing starting after
``<use_case>/<that day>/``, S3's ``StartAfter``), never the whole landing prefix. Files may
still arrive late for the newest day and the ``LATE_DAYS`` days before it; a file landing for
an older, settled day is not seen by the sensor: ``mlops refresh`` (which lists every day) or a
backfill of that partition picks it up. The cursor keeps only the open days, so it stays small.
"""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg

from mlops_assets.ingest.assets import raw_key
from mlops_assets.ingest.landing import LandingZone, fingerprint
from mlops_assets.partitions import daily_partitions
from mlops_assets.specs.model import UseCaseSpec

LATE_DAYS = 1
"""Days before the newest landed day whose folders the sensor still lists for late files."""


def materialized_fingerprint(
    instance: dg.DagsterInstance, key: dg.AssetKey, day: str
) -> str | None:
    """The source fingerprint recorded by the latest ``raw_data`` materialisation of a day."""
    result = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[day]), limit=1
    )
    if not result.records:
        return None
    materialization = result.records[0].asset_materialization
    value = materialization.metadata.get("source_fingerprint") if materialization else None
    return getattr(value, "value", None) if value is not None else None


def landed_fingerprints(
    landing: LandingZone, spec: UseCaseSpec, since: str | None = None
) -> dict[str, str]:
    """The fingerprint of every landing day that is a partition, from ``since`` (all if None)."""
    partitions = set(daily_partitions(spec).get_partition_keys())
    return {
        day: fingerprint(files)
        for day, files in landing.files_by_day(spec.name, since=since).items()
        if day in partitions
    }


def pending_days(
    landing: LandingZone,
    spec: UseCaseSpec,
    instance: dg.DagsterInstance,
    known: dict[str, str] | None = None,
    since: str | None = None,
) -> dict[str, str]:
    """Landing days whose files differ from what was last ingested or requested.

    Args:
        landing: The landing zone.
        spec: The use case.
        instance: Where ``raw_data`` materialisations (and their fingerprints) are recorded.
        known: Days mapped to fingerprints already handled (a sensor cursor).
        since: First day to list; ``None`` lists every day (what ``mlops refresh`` does).

    Returns:
        Each such day with its current fingerprint.
    """
    known = known or {}
    return {
        day: current
        for day, current in landed_fingerprints(landing, spec, since).items()
        if known.get(day) != current
        and materialized_fingerprint(instance, raw_key(spec), day) != current
    }


def open_from(cursor: dict[str, str], late_days: int = LATE_DAYS) -> str | None:
    """First day a tick lists: ``late_days`` before the newest day in the cursor (None: all)."""
    if not cursor:
        return None
    newest = dt.date.fromisoformat(max(cursor))
    return (newest - dt.timedelta(days=late_days)).isoformat()


def next_cursor(
    cursor: dict[str, str], landed: dict[str, str], late_days: int = LATE_DAYS
) -> dict[str, str]:
    """The cursor after a tick that handled ``landed``: only the days still open are kept."""
    merged = {**cursor, **landed}
    first = open_from(merged, late_days)
    return {day: digest for day, digest in sorted(merged.items()) if first is None or day >= first}


def parse_cursor(text: str | None) -> dict[str, str]:
    """A cursor's days and fingerprints (empty for a new sensor)."""
    if not text:
        return {}
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"landing sensor cursor is not a mapping of days: {text[:100]!r}")
    return {str(day): str(digest) for day, digest in value.items()}


def build_landing_sensor(
    spec: UseCaseSpec, job_name: str, late_days: int = LATE_DAYS
) -> dg.SensorDefinition:
    """The landing sensor of one use case, targeting its ingest job."""

    @dg.sensor(
        name=f"{spec.name}__landing_sensor",
        job_name=job_name,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"{spec.name}: a run per landing day with new or changed files (lists only "
        f"the newest day seen and the {late_days} before it).",
    )
    def landing_sensor(context: dg.SensorEvaluationContext, landing: LandingZone):
        cursor = parse_cursor(context.cursor)
        landed = landed_fingerprints(landing, spec, since=open_from(cursor, late_days))
        handled: dict[str, str] = {}
        requested = 0
        for day, digest in landed.items():
            if cursor.get(day) == digest:
                continue
            handled[day] = digest
            if materialized_fingerprint(context.instance, raw_key(spec), day) == digest:
                continue  # ingested already (by `mlops refresh`, a backfill, another cursor)
            requested += 1
            yield dg.RunRequest(
                run_key=f"{spec.name}:{day}:{digest}",
                partition_key=day,
                tags={"mlops/trigger": "landing", "mlops/source_fingerprint": digest},
            )
        updated = next_cursor(cursor, handled, late_days)
        if updated != cursor:
            context.update_cursor(json.dumps(updated, sort_keys=True))
        if not requested:
            yield dg.SkipReason(f"no new files for {spec.name}")

    return landing_sensor
