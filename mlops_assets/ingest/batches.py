"""Landed files in, partitions out: what to ingest next, and the rows of a run's partitions.

One path for every use case. New file versions (not in the ingestion ledger, not already
requested) are *pending*; the partitions each one's rows fall on are its span (a landing-date
file: its landing day; an event-date file: read once to find out). Pending files whose spans
overlap are ingested together, as ONE run over the range their spans cover; files whose spans do
not overlap get runs of their own, so one bad day of a landing-date use case never holds back
another day's ingestion. The landing sensor and ``mlops refresh`` both call
:func:`pending_ranges`; ``raw_data`` calls :func:`read_days` for its run's range.

The sensor's cursor keeps, for the landing days still open to late files, the file digests it
has requested, so a file is requested once even before its run has written the ledger.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from mlops_assets.ingest.days import by_event_date, day_of_rows, known_span, landing_day_of
from mlops_assets.ingest.inputs import (
    MissingReferenceError,
    References,
    is_reference,
    prepare,
    references_in_force,
)
from mlops_assets.ingest.landing import LandingZone
from mlops_assets.ingest.ledger import IngestedFile, file_digest, ingested_files
from mlops_assets.ingest.readers import UnreadableFileError, read_landed_file
from mlops_assets.specs.model import UseCaseSpec
from mlops_assets.storage.objectstore import ObjectInfo, ObjectStore

LATE_DAYS = 1
"""Landing days before the newest one seen whose folders the sensor still lists for late files."""
SOURCE_FILE = "_source_file"
ROW_NUMBER = "_row_number"


class NothingLandedError(RuntimeError):
    """No file has landed where a run expected some; the message names the location."""


def read_files(
    landing: LandingZone,
    files: Iterable[ObjectInfo],
    spec: UseCaseSpec,
    references: References | None = None,
) -> pd.DataFrame:
    """Landed data files as the spec's long rows (text), with ingestion columns.

    The ingestion columns are the source file, the row number in the file as landed and the
    landing day. Files in a vendor layout are reshaped and joined with the reference files in force
    (:mod:`~mlops_assets.ingest.inputs`; read once per call unless given).

    Raises:
        UnreadableFileError: A file cannot be parsed or lacks its layout's columns (the message
            names it).
        MissingReferenceError: A declared reference file has not landed yet.
    """
    files = list(files)
    if references is None and files:
        references = references_in_force(landing, spec)
    frames = []
    for info in files:
        frame = read_landed_file(info.key, landing.store().get_bytes(info.key))
        frame[SOURCE_FILE] = info.key
        frame[ROW_NUMBER] = range(1, len(frame) + 1)
        carried = [SOURCE_FILE, ROW_NUMBER]
        frame = prepare(frame, info.key, spec, references or References(), carried)
        frame["_landed_date"] = landing_day_of(info)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def data_files(spec: UseCaseSpec, files: Iterable[ObjectInfo]) -> list[ObjectInfo]:
    """The landed files that are data (reference files are joined onto them, never read alone)."""
    return [info for info in files if not is_reference(spec, info.key)]


def earliest_landing_day(spec: UseCaseSpec, first_day: str) -> str | None:
    """The first landing day whose files can hold rows of ``first_day`` (``None``: any)."""
    probe = ObjectInfo(f"{spec.name}/{first_day}/probe", 0, "")
    return first_day if known_span(probe, spec) is not None else None


# ---------------------------------------------------------------- a run's rows


@dataclass
class DayRows:
    """What ``raw_data`` read for a range of partitions."""

    rows: pd.DataFrame  # text, as landed, plus ingestion columns
    files: list[ObjectInfo]  # the files read
    entries: list[IngestedFile]  # their ingestion ledger entries, written once stored
    undated: int  # rows of those files without a readable day (they belong to no partition)
    skipped: int  # files whose recorded span misses the range (not read)
    claimed: list[str] = field(default_factory=list)  # days of the range the files land on


def span_of(info: ObjectInfo, spec: UseCaseSpec, ledger: Mapping[str, IngestedFile]) -> Any:
    """A file's span if known (from its landing day or the ledger); ``()`` if never read."""
    known = known_span(info, spec)
    if known is not None:
        return known
    entry = ledger.get(file_digest(info))
    return () if entry is None else entry.span


def read_days(
    landing: LandingZone, store: ObjectStore, spec: UseCaseSpec, days: list[str], run_id: str = ""
) -> DayRows:
    """Rows of the landed files whose partition is one of ``days``.

    Files whose span (known, or recorded in the ingestion ledger) misses ``days`` are not read.

    Raises:
        NothingLandedError: No file landed that could hold these days.
        UnreadableFileError: A file cannot be parsed.
    """
    first, last = min(days), max(days)
    since = earliest_landing_day(spec, first)
    listed = landing.files_by_day(spec.name, since=since)
    files = data_files(
        spec, [f for day, found in listed.items() if day <= last or since is None for f in found]
    )
    if not files:
        raise NothingLandedError(
            f"{spec.name}: no files landed for {first}..{last} in "
            f"{landing.store().describe(f'{spec.name}/')}"
        )
    ledger = ingested_files(store, spec)
    to_read = []
    for info in files:
        span = span_of(info, spec, ledger)
        if span == () or (span is not None and span[0] <= last and span[1] >= first):
            to_read.append(info)
    frame = read_files(landing, to_read, spec)
    row_days = day_of_rows(frame, spec) if len(frame) else pd.Series(dtype=object)
    entries = [_entry(info, frame, row_days, spec, run_id) for info in to_read]
    wanted = set(days)
    raw = frame[row_days.isin(wanted)].reset_index(drop=True) if len(frame) else frame
    raw["_ingested_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    claimed = sorted(
        {d for info in to_read if (s := known_span(info, spec)) for d in s if d in wanted}
    )
    return DayRows(
        rows=raw,
        files=to_read,
        entries=entries,
        undated=int(row_days.isna().sum()),
        skipped=len(files) - len(to_read),
        claimed=claimed,
    )


def _entry(
    info: ObjectInfo, frame: pd.DataFrame, days: pd.Series, spec: UseCaseSpec, run_id: str
) -> IngestedFile:
    mine = days[frame[SOURCE_FILE] == info.key].dropna() if len(frame) else days
    known = known_span(info, spec)
    first, last = known if known else (mine.min(), mine.max()) if len(mine) else (None, None)
    return IngestedFile(
        landing_day=landing_day_of(info),
        digest=file_digest(info),
        first=first,
        last=last,
        key=info.key,
        rows=int((frame[SOURCE_FILE] == info.key).sum()) if len(frame) else 0,
        run_id=run_id,
    )


# ---------------------------------------------------------------- what is pending


@dataclass(frozen=True)
class PendingRange:
    """One run to request: the partitions ``first..last`` and the new file versions it ingests."""

    first: str
    last: str
    files: dict[str, str]  # landed key -> digest

    @property
    def fingerprint(self) -> str:
        """One digest of the file versions (names the run request)."""
        payload = json.dumps(sorted(self.files.items()))
        return hashlib.sha1(payload.encode()).hexdigest()[:16]

    @property
    def label(self) -> str:
        """``first..last``, or the day for a one-day range."""
        return self.first if self.first == self.last else f"{self.first}..{self.last}"


@dataclass
class Pending:
    """What :func:`pending_ranges` found."""

    ranges: list[PendingRange]
    handled: dict[str, list[str]]  # landing day -> digests looked at (the sensor's cursor adds)
    unplaced: dict[str, str]  # landed key -> why its rows fall on no partition
    newest_day: str | None = None  # the newest landing day listed (keeps the cursor windowed)


def new_files(
    landing: LandingZone,
    store: ObjectStore,
    spec: UseCaseSpec,
    known: Mapping[str, Iterable[str]] | None = None,
    since: str | None = None,
) -> tuple[list[ObjectInfo], str | None]:
    """New landed file versions, and the newest landing day listed.

    New: neither in the ingestion ledger nor among the ``known`` digests.
    """
    requested = {d for digests in (known or {}).values() for d in digests}
    ledger = ingested_files(store, spec, since=since)
    listed = landing.files_by_day(spec.name, since=since)
    files = [
        info
        for day_files in listed.values()
        for info in data_files(spec, day_files)
        if file_digest(info) not in ledger and file_digest(info) not in requested
    ]
    return files, max(listed) if listed else None


def pending_ranges(
    landing: LandingZone,
    store: ObjectStore,
    spec: UseCaseSpec,
    partitions: tuple[str, str],
    known: Mapping[str, Iterable[str]] | None = None,
    since: str | None = None,
) -> Pending:
    """The runs that would ingest every new file version landed from ``since`` (all if None).

    A file whose rows fall after today (a landing day in the future, or future event dates) is
    reported in ``unplaced`` and left out of ``handled``: it is looked at again on every tick and
    ingested once its day has a partition. A future landing day does not move the sensor's
    window of open days either (it would stop listing today's folder).

    Args:
        landing: The landing zone.
        store: The asset storage (the ingestion ledger).
        spec: The use case.
        partitions: The first and last partition that exist (a day outside has no partition).
        known: Digests already requested, by landing day (a sensor cursor).
        since: First landing day to list.
    """
    files, newest = new_files(landing, store, spec, known, since)
    today = partitions[1]
    newest = min(newest, today) if newest else None
    handled: dict[str, list[str]] = {newest: []} if newest else {}
    spans: list[tuple[str, str, ObjectInfo]] = []
    unplaced: dict[str, str] = {}
    references = references_in_force(landing, spec) if files else References()
    for info in files:
        try:
            span = file_span(landing, info, spec, within=partitions, references=references)
        except MissingReferenceError as waiting:  # not handled: looked at again next time
            unplaced[info.key] = str(waiting)
            continue
        except UnreadableFileError:  # raw_data fails on it, naming the file, on its landing day
            span = (landing_day_of(info), landing_day_of(info))
        clipped = _clip(span, partitions)
        if clipped is None:
            outside = (
                file_span(landing, info, spec, references=references) if span is None else span
            )
            unplaced[info.key] = why_unplaced(spec, outside, partitions)
            if outside is not None and outside[0] > today:
                continue  # not yet: looked at again until its day comes
        handled.setdefault(min(landing_day_of(info), today), []).append(file_digest(info))
        if clipped is not None:
            spans.append((*clipped, info))
    return Pending(_merge(spans), handled, unplaced, newest)


def skip_explanation(spec: UseCaseSpec, found: Pending, since: str | None, shown: int = 3) -> str:
    """Why a landing sensor tick requested nothing: what it listed, and the files left out.

    Every landed file that falls on no partition is named (the first few), so a file landed for
    a future day, or dated before the first partition, is never silent.
    """
    listed = f"landing days from {since}" if since else "every landing day"
    newest = f", newest {found.newest_day}" if found.newest_day else ", none landed yet"
    text = f"no new files for {spec.name} ({listed}{newest})"
    if found.unplaced:
        items = list(found.unplaced.items())
        more = f"; and {len(items) - shown} more" if len(items) > shown else ""
        reasons = "; ".join(f"{key}: {why}" for key, why in items[:shown])
        text += f"; not ingested: {reasons}{more}"
    return text


def file_span(
    landing: LandingZone,
    info: ObjectInfo,
    spec: UseCaseSpec,
    within: tuple[str, str] | None = None,
    references: References | None = None,
) -> tuple[str, str] | None:
    """The partitions a file's rows fall on: known from where it landed, else read.

    With ``within`` (the first and last partition), rows dated outside it are left out, so a
    stray row dated years before the first partition or after today does not widen the span.
    """
    known = known_span(info, spec)
    if known is not None:
        return known
    days = day_of_rows(read_files(landing, [info], spec, references), spec).dropna()
    if within is not None:
        days = days[(days >= within[0]) & (days <= within[1])]
    return (str(days.min()), str(days.max())) if len(days) else None


def _clip(span: tuple[str, str] | None, partitions: tuple[str, str]) -> tuple[str, str] | None:
    if span is None:
        return None
    first, last = max(span[0], partitions[0]), min(span[1], partitions[1])
    return (first, last) if first <= last else None


def why_unplaced(
    spec: UseCaseSpec, span: tuple[str, str] | None, partitions: tuple[str, str]
) -> str:
    """Why a file's rows (dated ``span``) fall on no partition of ``partitions``."""
    if span is None:
        return "no row has a readable date"
    first, last = partitions
    landed = not by_event_date(spec)
    dated = f"landed for {span[0]}" if landed else f"its rows are dated {span[0]}..{span[1]}"
    if span[0] > last:
        return f"{dated}, after today ({last}, UTC): not ingested before {span[0]}"
    start = f"the first partition {first}"
    if landed:
        return f"{dated}, before {start} (partitions.start_date): never ingested"
    return f"{dated}, before {start}"


def landing_problem(
    spec: UseCaseSpec, day: str, partitions: tuple[str, str], frame: pd.DataFrame | None = None
) -> tuple[str | None, list[str]]:
    """Whether a file about to land on ``day`` would be ingested: a refusal, and notes.

    Refused: a landing day after today (no partition exists for it yet); a landing-date use
    case's day before its first partition (its rows would never be ingested); an event-date
    file (given as ``frame``) with no row dated inside the partitions. The notes count an
    event-date file's rows that fall outside and are left out.
    """
    first, last = partitions
    if day > last:
        return (
            f"landing day {day} is after today ({last}, UTC): no partition exists for it yet, "
            "so neither the landing sensor nor `mlops refresh` would ingest it before then"
        ), []
    if not by_event_date(spec):
        if day < first:
            return (
                f"landing day {day} is before {spec.name}'s first partition {first} "
                "(partitions.start_date in its defs.yaml): its rows would never be ingested"
            ), []
        return None, []
    if frame is None:
        return None, []
    days = day_of_rows(frame, spec)
    dated = days.dropna()
    inside = dated[(dated >= first) & (dated <= last)]
    if inside.empty:
        span = (str(dated.min()), str(dated.max())) if len(dated) else None
        return f"{spec.name}: " + why_unplaced(spec, span, partitions), []
    notes = []
    after = dated[dated > last]
    if len(after):
        notes.append(
            f"{len(after)} rows dated after today ({after.min()}..{after.max()}) are not ingested"
        )
    before = dated[dated < first]
    if len(before):
        notes.append(f"{len(before)} rows dated before the first partition {first} are left out")
    undated = int(days.isna().sum())
    if undated:
        notes.append(f"{undated} rows have no readable {spec.partitions.date_column}")
    return None, notes


def _merge(spans: list[tuple[str, str, ObjectInfo]]) -> list[PendingRange]:
    """Overlapping spans become one range (with all their files); others stay apart."""
    ranges: list[PendingRange] = []
    for first, last, info in sorted(spans, key=lambda s: (s[0], s[1])):
        if ranges and first <= ranges[-1].last:
            current = ranges.pop()
            files = {**current.files, info.key: file_digest(info)}
            ranges.append(PendingRange(current.first, max(current.last, last), files))
        else:
            ranges.append(PendingRange(first, last, {info.key: file_digest(info)}))
    return ranges


# ---------------------------------------------------------------- the sensor's cursor


def parse_cursor(text: str | None) -> dict[str, list[str]]:
    """A cursor's landing days and the digests requested for each (empty for a new sensor).

    A cursor of the earlier format (one fingerprint per day) reads as empty: the ingestion
    ledger already records what was ingested (``mlops migrate`` builds it for an older home).
    """
    if not text:
        return {}
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"landing sensor cursor is not a mapping of days: {text[:100]!r}")
    return {str(day): [str(d) for d in v] for day, v in value.items() if isinstance(v, list)}


def open_from(cursor: Mapping[str, object], late_days: int = LATE_DAYS) -> str | None:
    """First landing day a tick lists: ``late_days`` before the newest day seen (None: all)."""
    if not cursor:
        return None
    newest = dt.date.fromisoformat(max(cursor))
    return (newest - dt.timedelta(days=late_days)).isoformat()


def next_cursor(
    cursor: Mapping[str, list[str]],
    handled: Mapping[str, list[str]],
    late_days: int = LATE_DAYS,
) -> dict[str, list[str]]:
    """The cursor after a tick that handled ``handled``: only the days still open are kept."""
    merged = {day: sorted(set(digests)) for day, digests in cursor.items()}
    for day, digests in handled.items():
        merged[day] = sorted(set(merged.get(day, [])) | set(digests))
    first = open_from(merged, late_days)
    return {day: merged[day] for day in sorted(merged) if first is None or day >= first}
