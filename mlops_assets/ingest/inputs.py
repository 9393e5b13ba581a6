"""Landed files as vendors ship them: which file is what, wide files read long, references joined.

A spec's ``inputs`` section names the kinds of files a use case accepts by file name pattern.
Kaggle's M5 ships three: the wide sales (one row per series, a column per day ``d_1 … d_N``),
``calendar.csv`` (``d`` -> date, week, events, SNAP days) and ``sell_prices.csv`` (a price per
store, item and week). Landed as they are, the sales file is read long (one row per series and
day), the calendar is joined on ``d`` (which gives each row its date, hence its partition) and
the prices on store, item and week; an item's rows start at its first price. The same joins
apply to a long file (the real M5 subset lacks the SNAP columns: the calendar brings them).

A reference file is never data itself: it creates no partition and no run. The newest one
landed (the latest landing day that brought one) is in force for every data file read, so a
corrected calendar applies from then on. A reference that has not landed is not needed by a
file that already has every column of the spec (a long history with its calendar columns); a
file that lacks some waits, reported as such with what it lacks, until one lands.

Everything here is pure pandas on the text frames :func:`~mlops_assets.ingest.readers.
read_landed_file` returns, called from :func:`~mlops_assets.ingest.batches.read_files` (the one
place landed files are read).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mlops_assets.ingest.landing import LandingZone
from mlops_assets.ingest.readers import UnreadableFileError, read_landed_file
from mlops_assets.specs.model import InputFile, ReferenceJoin, UseCaseSpec, WideLayout
from mlops_assets.storage.objectstore import ObjectInfo

MATCHED = "_reference_matched"


class MissingReferenceError(RuntimeError):
    """A data file needs a reference file that has not landed yet; the message names both."""


def file_name(key: str) -> str:
    """The file name of a landed key (``<use_case>/<day>/<name>``)."""
    return key.rsplit("/", 1)[-1]


def input_of(spec: UseCaseSpec, key: str) -> InputFile | None:
    """The spec's input entry a landed file is (the first pattern its name matches), or None."""
    if spec.inputs is None:
        return None
    name = file_name(key).lower()
    for entry in spec.inputs.files:
        if fnmatch.fnmatchcase(name, entry.pattern.lower()):
            return entry
    return None


def is_reference(spec: UseCaseSpec, key: str) -> bool:
    """Whether a landed file is a reference file (joined onto data, never data itself)."""
    entry = input_of(spec, key)
    return entry is not None and entry.reference is not None


def dated_as_landed(spec: UseCaseSpec, key: str) -> bool:
    """Whether a file's rows carry their event dates as landed (not a reference, not wide)."""
    entry = input_of(spec, key)
    return entry is None or (entry.reference is None and entry.wide is None)


def describe(spec: UseCaseSpec, key: str) -> str:
    """What a landed file is, for ``mlops land`` and the run logs."""
    entry = input_of(spec, key)
    if entry is None:
        return "data (long layout)"
    if entry.reference is not None:
        return f"reference `{entry.name}` (joined on {', '.join(entry.reference.keys)})"
    if entry.wide is not None:
        return f"data `{entry.name}` (wide: columns {entry.wide.columns} read as rows)"
    return f"data `{entry.name}`"


# ---------------------------------------------------------------- references in force


@dataclass
class References:
    """The reference files in force: their rows by input name, and which landed file each is."""

    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)


def _without_index_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Drop the unnamed index column some exports lead with (``,store_id,...``)."""
    unnamed = [c for c in frame.columns if not c or str(c).startswith("Unnamed: ")]
    return frame.drop(columns=unnamed)


def newest_references(spec: UseCaseSpec, listed: dict[str, list[ObjectInfo]]) -> dict[str, str]:
    """Per reference input, the landed key in force: the newest landing day's file."""
    found: dict[str, str] = {}
    for day in sorted(listed):
        for info in sorted(listed[day], key=lambda i: i.key):
            entry = input_of(spec, info.key)
            if entry is not None and entry.reference is not None:
                found[entry.name] = info.key
    return found


def references_in_force(landing: LandingZone, spec: UseCaseSpec) -> References:
    """Read the reference files in force (none when the spec declares none)."""
    if spec.inputs is None or not spec.inputs.references:
        return References()
    keys = newest_references(spec, landing.files_by_day(spec.name))
    frames = {
        name: _without_index_columns(read_landed_file(key, landing.store().get_bytes(key)))
        for name, key in keys.items()
    }
    return References(frames, keys)


# ---------------------------------------------------------------- one data file


def to_long(frame: pd.DataFrame, wide: WideLayout, key: str, keep: list[str]) -> pd.DataFrame:
    """A wide file's rows as long rows: one per id row and value column.

    Raises:
        UnreadableFileError: An id column is missing, or no column matches the pattern.
    """
    missing = [c for c in wide.id_columns if c not in frame.columns]
    if missing:
        raise UnreadableFileError(f"{key}: wide file without its id columns {missing}")
    values = [c for c in frame.columns if fnmatch.fnmatchcase(c, wide.columns)]
    if not values:
        raise UnreadableFileError(f"{key}: no column matches `{wide.columns}` (a wide file)")
    ids = [*wide.id_columns, *[c for c in keep if c in frame.columns]]
    return frame.melt(
        id_vars=ids, value_vars=values, var_name=wide.names_to, value_name=wide.values_to
    )


def _strip(values: pd.Series) -> pd.Series:
    return values.map(lambda v: v.strip() if isinstance(v, str) else v)


def join_reference(
    frame: pd.DataFrame,
    reference: pd.DataFrame,
    how: ReferenceJoin,
    names: tuple[str, str],
    date_column: str | None,
) -> pd.DataFrame:
    """``frame`` with the reference's columns joined on ``how.keys`` (left join, one match each).

    A column both files have keeps the data's value and takes the reference's where the data
    has none. With ``starts_series_by``, a series' rows before its first matched row are
    dropped (an item has no price, and no sales row, before it was first sold).

    Raises:
        UnreadableFileError: A key column is missing from either file (``names``: the data
            file's and the reference file's key, for the message).
    """
    data_key, reference_key = names
    for where, table, key in ((reference_key, reference, "reference"), (data_key, frame, "data")):
        missing = [c for c in how.keys if c not in table.columns]
        if missing:
            raise UnreadableFileError(f"{where}: {key} file without its join columns {missing}")
    reference = reference.assign(**{c: _strip(reference[c]) for c in how.keys})
    reference = reference.drop_duplicates(how.keys, keep="last").assign(**{MATCHED: True})
    left = frame.assign(**{c: _strip(frame[c]) for c in how.keys})
    merged = left.merge(reference, on=how.keys, how="left", suffixes=("", "__reference"))
    for column in reference.columns:
        twin = f"{column}__reference"
        if twin in merged.columns:
            merged[column] = merged[column].where(merged[column].notna(), merged[twin])
            merged = merged.drop(columns=twin)
    matched = merged[MATCHED].eq(True)
    merged = merged.drop(columns=MATCHED)
    if how.starts_series_by:
        merged = _from_first_match(merged, matched, how.starts_series_by, date_column)
    return merged


def _from_first_match(
    frame: pd.DataFrame, matched: pd.Series, series: list[str], date_column: str | None
) -> pd.DataFrame:
    """Each series' rows from its first matched row on (in date order when there is a date)."""
    if date_column and date_column in frame.columns:
        when = pd.to_datetime(frame[date_column], errors="coerce", format="mixed")
    else:
        when = pd.Series(np.arange(len(frame)), index=frame.index)
    groups = frame.groupby(series, sort=False, dropna=False).ngroup()
    first = when.where(matched).groupby(groups).transform("min")
    keep = when.ge(first).fillna(False).astype(bool)
    return frame[keep].reset_index(drop=True)


def prepare(
    frame: pd.DataFrame, key: str, spec: UseCaseSpec, references: References, keep: list[str]
) -> pd.DataFrame:
    """One landed data file's rows in the spec's long layout, references joined.

    Args:
        frame: The file as read (text columns).
        key: Its landed key (names it in errors, and tells which input it is).
        spec: The use case.
        references: The reference files in force.
        keep: Ingestion columns (source file, row number) carried onto long rows.

    Raises:
        MissingReferenceError: A declared reference file has not landed.
        UnreadableFileError: The file does not have the columns its declared layout needs.
    """
    if spec.inputs is None:
        return frame
    entry = input_of(spec, key)
    if entry is not None and entry.wide is not None:
        frame = to_long(frame, entry.wide, key, keep)
    waiting = []
    for reference in spec.inputs.references:
        if reference.name not in references.frames:
            waiting.append(reference)
            continue
        assert reference.reference is not None
        frame = join_reference(
            frame,
            references.frames[reference.name],
            reference.reference,
            (key, references.keys[reference.name]),
            spec.partitions.date_column,
        )
    lacking = [c for c in contract_columns(spec) if c not in frame.columns]
    if waiting and lacking and not lacks_its_own_columns(frame, spec):
        wanted = ", ".join(f"`{r.name}` (a name like `{r.pattern}`)" for r in waiting)
        raise MissingReferenceError(
            f"{key} waits for a reference file to be landed: {wanted}; its rows lack "
            f"{', '.join(lacking[:8])}{' …' if len(lacking) > 8 else ''}"
        )
    return frame


def lacks_its_own_columns(frame: pd.DataFrame, spec: UseCaseSpec) -> bool:
    """Whether the frame lacks an id or the target: columns no reference can supply.

    Such a file is not data waiting for its reference (a calendar landed as if it were the
    sales, say); it goes on to the checks, which reject its days naming the missing columns.
    """
    own = [c.name for c in spec.id_columns] + [spec.target.name]
    return any(name not in frame.columns for name in own)


def contract_columns(spec: UseCaseSpec) -> list[str]:
    """The columns a data file must have (ids, features and target; not the optional ones)."""
    columns = [*spec.input_columns, spec.target]
    return [c.name for c in columns if not getattr(c, "optional", False)]
