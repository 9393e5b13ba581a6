"""``raw_data``: a day's landed files, rows kept as they arrived plus ingestion columns."""

import datetime as dt
from collections.abc import Iterator
from typing import Any

import dagster as dg
import pandas as pd

from mlops_assets.features.quality import RAW_CHECKS, raw_checks, write_verdict
from mlops_assets.ingest.event_dates import (
    backfill_policy,
    by_event_date,
    read_event_days,
    read_files,
    split_by_day,
)
from mlops_assets.ingest.landing import LandingZone, fingerprint
from mlops_assets.partitions import daily_partitions
from mlops_assets.specs.model import UseCaseSpec
from mlops_assets.storage.objectstore import ObjectInfo
from mlops_assets.storage.resources import STORAGE_RETRY_POLICY, ObjectStorage


def raw_key(spec: UseCaseSpec) -> dg.AssetKey:
    """Asset key of a use case's raw data."""
    return dg.AssetKey([spec.name, "raw_data"])


def read_day(landing: LandingZone, spec: UseCaseSpec, day: str) -> tuple[pd.DataFrame, list]:
    """All files of a landing day concatenated, with source file and row number columns."""
    files = landing.files_for(spec.name, day)
    if not files:
        raise dg.Failure(
            description=f"{spec.name}: no files landed for {day} in "
            f"{landing.store().describe(f'{spec.name}/{day}/')}",
            allow_retries=False,
        )
    raw = read_files(landing, files)
    raw["_landed_date"] = day
    raw["_ingested_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return raw, files


def check_results(key: dg.AssetKey, outcomes: list[Any]) -> list[dg.AssetCheckResult]:
    """Dagster check results for quality outcomes, threshold and numbers in the metadata."""
    return [
        dg.AssetCheckResult(
            asset_key=key,
            check_name=outcome.name,
            passed=outcome.passed,
            description=outcome.summary,
            metadata={
                k: dg.MetadataValue.json(v) if isinstance(v, (dict, list)) else v
                for k, v in outcome.metadata.items()
            },
        )
        for outcome in outcomes
    ]


def check_specs(key: dg.AssetKey, checks: dict[str, str]) -> list[dg.AssetCheckSpec]:
    """Blocking check specs: a failed check stops the rest of its run."""
    return [
        dg.AssetCheckSpec(name, asset=key, description=description, blocking=True)
        for name, description in checks.items()
    ]


def build_raw_data(spec: UseCaseSpec) -> dg.AssetsDefinition:
    """The ``raw_data`` asset of one use case, with its blocking schema and row-count checks."""
    key = raw_key(spec)

    @dg.asset(
        key=key,
        group_name=spec.name,
        partitions_def=daily_partitions(spec),
        kinds={"pandas", "parquet"},
        check_specs=check_specs(key, RAW_CHECKS),
        retry_policy=STORAGE_RETRY_POLICY,
        backfill_policy=backfill_policy(spec),
        description=f"{spec.name}: every file landed on the day, rows as they arrived."
        if not by_event_date(spec)
        else f"{spec.name}: rows of every landed file whose event date is the day.",
    )
    def raw_data(
        context: dg.AssetExecutionContext, landing: LandingZone, lake: ObjectStorage
    ) -> Iterator[Any]:
        if by_event_date(spec):
            yield from event_date_raw(context, spec, landing, lake)
            return
        day = context.partition_key
        raw, files = read_day(landing, spec, day)
        outcomes = raw_checks(raw, spec)
        write_verdict(lake.store(), spec, day, "raw", outcomes, context.run_id)
        yield dg.Output(raw, metadata=read_metadata(raw, files))
        yield from check_results(key, outcomes)

    return raw_data


def read_metadata(raw: pd.DataFrame, files: list[ObjectInfo]) -> dict[str, Any]:
    """What every ``raw_data`` run reports: the files read, their fingerprint, rows, columns."""
    return {
        "files": dg.MetadataValue.json([f.key for f in files]),
        "source_fingerprint": fingerprint(files),
        "num_rows": len(raw),
        "columns": dg.MetadataValue.json([c for c in raw.columns if c[:1] != "_"]),
    }


def event_date_raw(
    context: dg.AssetExecutionContext,
    spec: UseCaseSpec,
    landing: LandingZone,
    lake: ObjectStorage,
) -> Iterator[Any]:
    """``raw_data`` over a range of event dates: one object per day that has rows.

    The checks judge the range as a whole (one run, one verdict), and every day of it gets
    that verdict, so the splits read only days of ranges that passed.
    """
    days = list(context.partition_keys)
    found = read_event_days(landing, spec, days, index=lake.store())
    raw = found.rows
    per_day = split_by_day(raw, spec)
    outcomes = raw_checks(raw, spec)
    for day in per_day:
        write_verdict(lake.store(), spec, day, "raw", outcomes, context.run_id)
    yield dg.Output(
        per_day,
        metadata={
            **read_metadata(raw, found.files),
            "partitions_in_run": len(days),
            "days_with_rows": len(per_day),
            "first_day": days[0],
            "last_day": days[-1],
            "rows_without_date": found.undated,
            "files_skipped_by_index": found.skipped,
        },
    )
    yield from check_results(raw_key(spec), outcomes)
