"""The landing sensor: each new or changed landing day becomes one run of that day's partition.

The cursor maps each day to the fingerprint of its files when a run was last requested, so the
same files never produce a second run, and a second file landing on the same day produces
exactly one more (re-materialising the day with all its files).
"""

import json

import dagster as dg

from mlops_assets.ingest.assets import raw_key
from mlops_assets.ingest.landing import LandingZone, fingerprint
from mlops_assets.partitions import daily_partitions
from mlops_assets.specs.model import UseCaseSpec


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


def pending_days(
    landing: LandingZone,
    spec: UseCaseSpec,
    instance: dg.DagsterInstance,
    known: dict[str, str] | None = None,
) -> dict[str, str]:
    """Landing days whose files differ from what was last ingested or requested.

    Returns each such day with its fingerprint; ``known`` maps days to fingerprints already
    handled (a sensor cursor).
    """
    known = known or {}
    pending = {}
    partitions = set(daily_partitions(spec).get_partition_keys())
    for day, files in landing.files_by_day(spec.name).items():
        if day not in partitions:
            continue
        current = fingerprint(files)
        if known.get(day) == current:
            continue
        if materialized_fingerprint(instance, raw_key(spec), day) == current:
            continue
        pending[day] = current
    return pending


def build_landing_sensor(spec: UseCaseSpec, job_name: str) -> dg.SensorDefinition:
    """The landing sensor of one use case, targeting its ingest job."""

    @dg.sensor(
        name=f"{spec.name}__landing_sensor",
        job_name=job_name,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"{spec.name}: a run per landing day with new or changed files.",
    )
    def landing_sensor(context: dg.SensorEvaluationContext, landing: LandingZone):
        cursor: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        pending = pending_days(landing, spec, context.instance, cursor)
        for day, digest in pending.items():
            yield dg.RunRequest(
                run_key=f"{spec.name}:{day}:{digest}",
                partition_key=day,
                tags={"mlops/trigger": "landing", "mlops/source_fingerprint": digest},
            )
            cursor[day] = digest
        if pending:
            context.update_cursor(json.dumps(cursor, sort_keys=True))
        else:
            yield dg.SkipReason(f"no new files for {spec.name}")

    return landing_sensor
