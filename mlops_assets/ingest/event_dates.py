"""Event-date partitions: rows go to the day in their date column, not to the day they landed.

For a spec with ``partitions.by: event_date`` the landing layout stays
``<landing>/<use_case>/<landing day>/<file>``, but a partition holds the rows whose
``partitions.date_column`` is that day, from every landed file. A history file spanning many
days becomes those days' partitions in ONE run over the partition range (``raw_data`` and
``clean_data`` have a single-run backfill policy), not one run per day.

The landing sensor reads the date column of a new or changed landing day's files and requests
one run over the range of dates they hold; a landing day counts as handled once a successful
run carries its fingerprint in its tags (``mlops/landing_day`` and
``mlops/source_fingerprint``), so neither the sensor nor ``mlops refresh`` asks for it twice.

Cost: a partition's rows may come from any landed file. ``raw_data`` keeps an index of the
files it has read under the asset storage (``<uc>/landing_index/``: one empty object per file
version, named by the file's digest and its first and last event date), so one listing tells
which files can hold rows of a range, and a daily extract's run does not read a years-long
history file again. A file never read, or changed since, is read and indexed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

import dagster as dg
import pandas as pd

from mlops_assets.ingest.landing import LandingZone, fingerprint
from mlops_assets.ingest.readers import UnreadableFileError, read_landed_file
from mlops_assets.partitions import daily_partitions
from mlops_assets.specs.model import UseCaseSpec
from mlops_assets.storage.objectstore import ObjectInfo, ObjectStore

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
LANDING_DAYS_TAG = "mlops/landing_days"
"""Run tag: JSON mapping of the landing days a run ingests to their fingerprints."""


def by_event_date(spec: UseCaseSpec) -> bool:
    """Whether the use case's partitions are event dates."""
    return spec.partitions.by == "event_date"


def backfill_policy(spec: UseCaseSpec) -> dg.BackfillPolicy | None:
    """One run for a whole range of event dates; ``None`` (Dagster's default) otherwise."""
    return dg.BackfillPolicy.single_run() if by_event_date(spec) else None


def event_days(frame: pd.DataFrame, spec: UseCaseSpec) -> pd.Series:
    """Each row's event date as ``YYYY-MM-DD`` (missing where the date cannot be read)."""
    column = spec.partitions.date_column or ""
    if column not in frame.columns:
        return pd.Series(pd.NA, index=frame.index, dtype=object)
    dates = pd.to_datetime(frame[column], errors="coerce", format="mixed")
    return dates.dt.strftime("%Y-%m-%d").where(dates.notna(), None)


def read_files(landing: LandingZone, files: Iterable[ObjectInfo]) -> pd.DataFrame:
    """Landed files concatenated, with source file, row number and landing day columns."""
    frames = []
    for info in files:
        try:
            frame = read_landed_file(info.key, landing.store().get_bytes(info.key))
        except UnreadableFileError as error:  # the file is broken: retrying cannot help
            raise dg.Failure(description=str(error), allow_retries=False) from error
        frame["_source_file"] = info.key
        frame["_row_number"] = range(1, len(frame) + 1)
        frame["_landed_date"] = info.key.split("/")[1]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


INDEX_FOLDER = "landing_index"
NO_DATE = "none"


@dataclass
class EventDayRows:
    """What ``raw_data`` read for a range of event dates."""

    rows: pd.DataFrame  # text, as landed, plus ingestion columns
    files: list[ObjectInfo]  # the files read
    undated: int  # rows of those files without a readable date (they belong to no partition)
    skipped: int  # files the index shows hold no date of the range (not read)


def file_digest(info: ObjectInfo) -> str:
    """Names one version of a landed file (key, size and change token)."""
    payload = json.dumps([info.key, info.size, info.version])
    return hashlib.sha1(payload.encode()).hexdigest()[:20]


def indexed_spans(index: ObjectStore, spec: UseCaseSpec) -> dict[str, tuple[str, str] | None]:
    """First and last event date of each indexed file version (``None``: no dated row)."""
    prefix = f"{spec.name}/{INDEX_FOLDER}/"
    spans: dict[str, tuple[str, str] | None] = {}
    for info in index.list(prefix):
        parts = info.key[len(prefix) :].split("_")
        if len(parts) == 3:
            digest, first, last = parts
            spans[digest] = None if first == NO_DATE else (first, last)
    return spans


def index_files(
    index: ObjectStore,
    spec: UseCaseSpec,
    files: list[ObjectInfo],
    frame: pd.DataFrame,
    dates: pd.Series,
) -> None:
    """Record the event-date span of each file read (its rows in ``frame``, their ``dates``)."""
    spans = (
        dates.groupby(frame["_source_file"]).agg(["min", "max"]) if len(frame) else pd.DataFrame()
    )
    for info in files:
        first = last = NO_DATE
        if info.key in spans.index and pd.notna(spans.loc[info.key, "min"]):
            first, last = str(spans.loc[info.key, "min"]), str(spans.loc[info.key, "max"])
        name = f"{file_digest(info)}_{first}_{last}"
        index.put_bytes(f"{spec.name}/{INDEX_FOLDER}/{name}", b"")


def read_event_days(
    landing: LandingZone, spec: UseCaseSpec, days: list[str], index: ObjectStore | None = None
) -> EventDayRows:
    """Rows of the landed files whose event date is one of ``days``.

    With ``index`` (the asset storage), files whose indexed span misses ``days`` are not read,
    and the files read are indexed.
    """
    files = [f for day_files in landing.files_by_day(spec.name).values() for f in day_files]
    if not files:
        raise dg.Failure(
            description=f"{spec.name}: no files landed in "
            f"{landing.store().describe(f'{spec.name}/')}",
            allow_retries=False,
        )
    spans = indexed_spans(index, spec) if index is not None else {}
    first, last = min(days), max(days)
    to_read = [
        f
        for f in files
        if (span := spans.get(file_digest(f), ())) == ()  # never indexed
        or (span is not None and span[0] <= last and span[1] >= first)
    ]
    frame = read_files(landing, to_read)
    dates = event_days(frame, spec) if len(frame) else pd.Series(dtype=object)
    if index is not None:
        fresh = [f for f in to_read if file_digest(f) not in spans]
        index_files(index, spec, fresh, frame, dates)
    raw = frame[dates.isin(set(days))].reset_index(drop=True) if len(frame) else frame
    raw["_ingested_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return EventDayRows(raw, to_read, int(dates.isna().sum()), len(files) - len(to_read))


def split_by_day(frame: pd.DataFrame, spec: UseCaseSpec) -> dict[str, pd.DataFrame]:
    """The rows of each event date, for the IO manager to store one object per partition."""
    days = event_days(frame, spec)
    return {
        str(day): rows.reset_index(drop=True)
        for day, rows in frame.groupby(days, sort=True)
        if day is not None
    }


def date_range_of(
    landing: LandingZone, spec: UseCaseSpec, files: list[ObjectInfo]
) -> tuple[str, str] | None:
    """First and last event date of the files that are partitions (``None``: no such date)."""
    frame = read_files(landing, files)
    dates = event_days(frame, spec).dropna()
    partitions = daily_partitions(spec)
    first, last = partitions.get_first_partition_key(), partitions.get_last_partition_key()
    dates = dates[(dates >= first) & (dates <= last)] if first and last else dates.iloc[0:0]
    if dates.empty:
        return None
    return str(dates.min()), str(dates.max())


def handled_landing_days(instance: dg.DagsterInstance, spec: UseCaseSpec, job_name: str) -> dict:
    """Landing days (with fingerprints) that a successful ingest run has ingested."""
    runs = instance.get_runs(
        dg.RunsFilter(job_name=job_name, statuses=[dg.DagsterRunStatus.SUCCESS]), limit=200
    )
    handled: dict[str, set[str]] = {}
    for run in runs:
        for day, digest in json.loads(run.tags.get(LANDING_DAYS_TAG, "{}")).items():
            handled.setdefault(day, set()).add(digest)
    return handled


def range_tags(first: str, last: str, landed: dict[str, str]) -> dict[str, str]:
    """Tags of one run over the event dates ``first..last`` ingesting the ``landed`` days."""
    return {
        RANGE_START_TAG: first,
        RANGE_END_TAG: last,
        LANDING_DAYS_TAG: json.dumps(landed, sort_keys=True),
    }


def pending_range(
    landing: LandingZone,
    spec: UseCaseSpec,
    instance: dg.DagsterInstance,
    job_name: str,
    known: dict[str, str] | None = None,
    since: str | None = None,
) -> tuple[tuple[str, str] | None, dict[str, str]]:
    """The event-date range of the landing days not ingested yet, and those days' fingerprints.

    Args:
        landing: The landing zone.
        spec: The use case.
        instance: Where the ingest runs (and their landing-day tags) are recorded.
        job_name: The ingest job.
        known: Landing days mapped to fingerprints already requested (a sensor cursor).
        since: First landing day to list; ``None`` lists every day.
    """
    known = known or {}
    handled = handled_landing_days(instance, spec, job_name)
    pending = {
        day: files
        for day, files in landing.files_by_day(spec.name, since=since).items()
        if known.get(day) != fingerprint(files) and fingerprint(files) not in handled.get(day, ())
    }
    if not pending:
        return None, {}
    files = [f for day_files in pending.values() for f in day_files]
    digests = {day: fingerprint(day_files) for day, day_files in pending.items()}
    return date_range_of(landing, spec, files), digests


def build_event_date_sensor(spec: UseCaseSpec, job_name: str) -> dg.SensorDefinition:
    """The landing sensor of an event-date use case: one run over the new files' date range."""
    from mlops_assets.ingest.sensors import next_cursor, open_from, parse_cursor

    @dg.sensor(
        name=f"{spec.name}__landing_sensor",
        job_name=job_name,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"{spec.name}: new or changed landing days become ONE run over the range of "
        f"event dates (`{spec.partitions.date_column}`) their files hold.",
    )
    def landing_sensor(context: dg.SensorEvaluationContext, landing: LandingZone):
        cursor = parse_cursor(context.cursor)
        dates, landed = pending_range(
            landing, spec, context.instance, job_name, known=cursor, since=open_from(cursor)
        )
        updated = next_cursor(cursor, landed)
        if updated != cursor:
            context.update_cursor(json.dumps(updated, sort_keys=True))
        if dates is None:
            yield dg.SkipReason(f"no new dated rows for {spec.name}")
            return
        first, last = dates
        digest = fingerprint_of(landed)
        yield dg.RunRequest(
            run_key=f"{spec.name}:{first}..{last}:{digest}",
            tags={
                **range_tags(first, last, landed),
                "mlops/trigger": "landing",
                "mlops/source_fingerprint": digest,
            },
        )

    return landing_sensor


def fingerprint_of(landed: dict[str, str]) -> str:
    """One digest of several landing days' fingerprints."""
    import hashlib

    return hashlib.sha1(json.dumps(landed, sort_keys=True).encode()).hexdigest()[:16]
