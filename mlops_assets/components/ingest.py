"""``raw_data``, the landing sensor and the demo's simulate job of one use case.

One path for every use case (see :mod:`mlops_assets.ingest.batches`): the sensor requests one
run per set of new files whose partitions overlap, ``raw_data`` reads the files that can hold
rows of its run's range and writes one object per partition that has rows, and its ingestion
ledger entries record what was read.
"""

import json
from collections.abc import Iterator
from typing import Any

import dagster as dg
from pydantic import Field, field_validator

from mlops_assets import names
from mlops_assets.components.checks import alert_rejected_days, check_results, check_specs
from mlops_assets.components.partitions import daily_partitions, partition_bounds
from mlops_assets.components.resources import (
    QUIET_RUNS,
    STORAGE_RETRY_POLICY,
    AlertWebhookResource,
    LandingZone,
    ObjectStorage,
)
from mlops_assets.features.quality import RAW_CHECKS, raw_checks, write_verdict
from mlops_assets.ingest.batches import (
    LATE_DAYS,
    NothingLandedError,
    Pending,
    next_cursor,
    open_from,
    parse_cursor,
    pending_ranges,
    read_days,
    skip_explanation,
)
from mlops_assets.ingest.days import day_rows, require_day, rows_by_day
from mlops_assets.ingest.landing import fingerprint
from mlops_assets.ingest.ledger import record_files
from mlops_assets.ingest.readers import UnreadableFileError
from mlops_assets.ingest.simulate import SimulateSettings, land_generated
from mlops_assets.specs.model import UseCaseSpec
from mlops_assets.storage.tables import table_key, write_table


def raw_key(spec: UseCaseSpec) -> dg.AssetKey:
    """Asset key of a use case's raw data."""
    return dg.AssetKey(names.asset_path(spec.name, names.RAW_DATA))


def range_tags(first: str, last: str) -> dict[str, str]:
    """Tags of one run over the partitions ``first..last``."""
    return {names.RANGE_START_TAG: first, names.RANGE_END_TAG: last}


def build_raw_data(spec: UseCaseSpec) -> dg.AssetsDefinition:
    """The ``raw_data`` asset of one use case, with its blocking schema and row-count checks."""
    key = raw_key(spec)

    # A multi-asset only so that its output (and its checks) may be absent: a run over days
    # where nothing landed (the UI's "Materialize all -> Missing" on a fresh instance) succeeds,
    # materializes nothing and leaves those days missing, instead of failing once per range.
    @dg.multi_asset(
        outs={
            names.RAW_DATA: dg.AssetOut(
                key=key,
                group_name=spec.name,
                kinds={"pandas", "parquet"},
                is_required=False,
                description=f"{spec.name}: rows of every landed file whose partition is the "
                "day, as they arrived (all values as text).",
            )
        },
        name=f"{spec.name}__{names.RAW_DATA}",
        partitions_def=daily_partitions(spec),
        check_specs=check_specs(key, RAW_CHECKS),
        can_subset=True,
        retry_policy=STORAGE_RETRY_POLICY,
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def raw_data(
        context: dg.AssetExecutionContext,
        landing: LandingZone,
        lake: ObjectStorage,
        alerts: AlertWebhookResource,
    ) -> Iterator[Any]:
        days = list(context.partition_keys)
        store = lake.store()
        try:
            found = read_days(landing.zone(), store, spec, days, context.run_id)
        except NothingLandedError as error:
            context.log.info(f"{error}: nothing to ingest; {_days_stay_missing(days)}")
            return
        except UnreadableFileError as error:  # a retry cannot help
            raise dg.Failure(description=str(error), allow_retries=False) from error
        per_day = rows_by_day(found.rows, spec)
        context.log.info(
            f"read {len(found.files)} file{'' if len(found.files) == 1 else 's'} "
            f"({found.skipped} skipped by the index): "
            f"{len(found.rows)} rows on {len(per_day)} of the run's {len(days)} days"
        )
        if not per_day and not found.claimed and not found.undated:
            context.log.info(
                f"no landed row falls on {days[0]}..{days[-1]}: nothing to ingest; "
                f"{_days_stay_missing(days)}"
            )
            return
        outcomes = {}
        written = 0
        for day in sorted(set(per_day) | set(found.claimed)):
            rows = day_rows(found.rows, per_day[day]) if day in per_day else found.rows.iloc[0:0]
            outcomes[day] = raw_checks(rows, spec)
            write_verdict(store, spec, day, "raw", outcomes[day], context.run_id)
            if day in per_day:  # one day's copy at a time, written as it is made
                written += write_table(store, table_key(key.path, day), rows)
        if not outcomes:  # rows without a day, none on the run's days: it fails its checks
            outcomes = {f"{days[0]}..{days[-1]}": raw_checks(found.rows, spec)}
        yield dg.MaterializeResult(
            asset_key=key,
            metadata={
                "uri": store.describe(table_key(key.path).removesuffix(".parquet") + "/"),
                "bytes": written,
                "partitions_written": len(per_day),
                "files": dg.MetadataValue.json([f.key for f in found.files]),
                names.SOURCE_FINGERPRINT: fingerprint(found.files),
                "num_rows": len(found.rows),
                "columns": dg.MetadataValue.json([c for c in found.rows.columns if c[:1] != "_"]),
                "partitions_in_run": len(days),
                "days_with_rows": len(per_day),
                "first_day": days[0],
                "last_day": days[-1],
                "rows_without_date": found.undated,
                "files_skipped_by_index": found.skipped,
            },
        )
        record_files(store, spec, found.entries)
        alert_rejected_days(alerts, spec, key, outcomes, context)
        yield from check_results(key, outcomes)

    return raw_data


def _days_stay_missing(days: list[str]) -> str:
    """The log's word on days a run found nothing for."""
    span = f"{days[0]} stays" if len(days) == 1 else f"these {len(days)} days stay"
    return f"{span} missing until a file lands for them (the landing sensor runs it)"


def pending(spec: UseCaseSpec, landing: LandingZone, lake: ObjectStorage, cursor: dict) -> Pending:
    """What a sensor tick would request, given its cursor."""
    return pending_ranges(
        landing.zone(),
        lake.store(),
        spec,
        partitions=partition_bounds(spec),
        known=cursor,
        since=open_from(cursor),
    )


def build_landing_sensor(spec: UseCaseSpec, job_name: str) -> dg.SensorDefinition:
    """The landing sensor of one use case: a run per set of new files with overlapping days."""

    @dg.sensor(
        name=names.landing_sensor(spec.name),
        job_name=job_name,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"{spec.name}: new or changed landed files become runs over the days their "
        f"rows fall on (lists only the newest landing day seen and the {LATE_DAYS} before it).",
    )
    def landing_sensor(
        context: dg.SensorEvaluationContext, landing: LandingZone, lake: ObjectStorage
    ):
        cursor = parse_cursor(context.cursor)
        found = pending(spec, landing, lake, cursor)
        for batch in found.ranges:
            yield dg.RunRequest(
                run_key=f"{spec.name}:{batch.label}:{batch.fingerprint}",
                tags={
                    **range_tags(batch.first, batch.last),
                    names.TRIGGER_TAG: "landing",
                    names.SOURCE_FINGERPRINT_TAG: batch.fingerprint,
                },
            )
        updated = next_cursor(cursor, found.handled)
        if updated != cursor:
            context.update_cursor(json.dumps(updated, sort_keys=True))
        if not found.ranges:
            yield dg.SkipReason(skip_explanation(spec, found, open_from(cursor)))

    return landing_sensor


# ---------------------------------------------------------------- the demo's simulate job


class SimulateConfig(dg.Config):
    """Which day to generate and how to drift it."""

    rows: int = Field(default=500, gt=0, description="Rows in the generated batch.")
    seed: int = Field(default=7, description="Seed of the generator (same seed, same batch).")
    day: str | None = Field(
        default=None,
        description="Day to land (YYYY-MM-DD); default: the day after the newest landed day, "
        "or today when nothing has landed.",
    )
    shift_features: dict[str, float] = Field(
        default_factory=dict,
        description="Numeric features whose mean moves, in standard deviations (covariate drift).",
    )
    target_scale: float = Field(
        default=1.0, gt=0, description="Factor on the target: a changed relation (concept drift)."
    )

    @field_validator("day")
    @classmethod
    def _a_day(cls, value: str | None) -> str | None:
        """The same strict reading of a day as the CLI's ``--date``."""
        return None if value is None else require_day(value, "day").isoformat()

    def settings(self) -> SimulateSettings:
        """The generation settings."""
        return SimulateSettings(
            rows=self.rows,
            seed=self.seed,
            day=self.day,
            shift_features=dict(self.shift_features),
            target_scale=self.target_scale,
        )


def build_simulation(spec: UseCaseSpec) -> tuple[dg.JobDefinition, dg.ScheduleDefinition]:
    """The simulate job of a use case with a generator, and its daily schedule (off)."""

    @dg.op(name=names.simulate_op(spec.name), tags={"kind": "generator"})
    def land_generated_day(
        context: dg.OpExecutionContext, config: SimulateConfig, landing: LandingZone
    ) -> None:
        day, key, rows = land_generated(landing.zone(), spec, config.settings())
        context.log.info(f"landed {rows} generated rows for {day} at {key}")
        context.add_output_metadata({"day": day, "key": key, "rows": rows}, output_name="result")

    @dg.job(
        name=names.simulate_job(spec.name),
        description=f"{spec.name}: land the next day's generated batch (drift from config).",
        executor_def=dg.in_process_executor,
        config=QUIET_RUNS,
    )
    def simulate_new_day() -> None:
        land_generated_day()

    schedule = dg.ScheduleDefinition(
        name=names.simulate_schedule(spec.name),
        cron_schedule="0 6 * * *",
        job=simulate_new_day,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=f"{spec.name}: land a generated batch every morning (off by default).",
    )
    return simulate_new_day, schedule
