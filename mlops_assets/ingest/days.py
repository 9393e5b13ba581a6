"""Which partition a row, or a landed file, belongs to: the one place that knows the two kinds.

Every use case has daily partitions of *event dates*. For ``partitions.by: event_date`` a row's
date is its ``partitions.date_column``, so one landed history file spans many partitions; for
``partitions.by: landing_date`` the date is the day the file landed, so a file's rows all belong
to its landing day. Everything else (the landing sensor, ``mlops refresh``, ``raw_data``,
``clean_data``, monitoring) is written once, against :func:`day_of_rows` and
:func:`known_span`.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pandas as pd

from mlops_assets.specs.model import UseCaseSpec
from mlops_assets.storage.objectstore import ObjectInfo

LANDED_DATE = "_landed_date"
"""Ingestion column: the landing day of the file a row came from."""
DAY_FORMAT = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_day(text: object) -> dt.date | None:
    """A ``YYYY-MM-DD`` day, or ``None`` for anything else.

    The one reading of a day everywhere (the CLI's ``--date``, a landing folder's name, the
    simulate job's config): ``20261001`` or ``2026-W40`` are ISO 8601 but not days here, so a
    folder named so is not a landing day, and ``--date 20261001`` is refused.
    """
    if not isinstance(text, str) or not DAY_FORMAT.fullmatch(text):
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


def require_day(text: object, what: str = "date") -> dt.date:
    """:func:`parse_day`, raising for anything that is not a day.

    Raises:
        ValueError: ``text`` is not a ``YYYY-MM-DD`` day (the message quotes it).
    """
    day = parse_day(text)
    if day is None:
        raise ValueError(f"not a YYYY-MM-DD {what}: {text!r}")
    return day


def by_event_date(spec: UseCaseSpec) -> bool:
    """Whether a row's day comes from its own date column (else from its landing day)."""
    return spec.partitions.by == "event_date"


def landing_day_of(info: ObjectInfo) -> str:
    """The landing day of a landed file (its folder: ``<use_case>/<YYYY-MM-DD>/<file>``)."""
    return info.key.split("/")[1]


def day_of_rows(frame: pd.DataFrame, spec: UseCaseSpec) -> pd.Series:
    """Each row's partition as ``YYYY-MM-DD`` (``None`` where its date cannot be read)."""
    if not by_event_date(spec):
        if LANDED_DATE not in frame.columns:
            return pd.Series(None, index=frame.index, dtype=object)
        return frame[LANDED_DATE].astype(object)
    column = spec.partitions.date_column or ""
    if column not in frame.columns:
        return pd.Series(None, index=frame.index, dtype=object)
    dates = pd.to_datetime(frame[column], errors="coerce", format="mixed")
    return dates.dt.strftime("%Y-%m-%d").where(dates.notna(), None)


def known_span(info: ObjectInfo, spec: UseCaseSpec) -> tuple[str, str] | None:
    """The partitions a landed file's rows fall on, when known without reading it.

    A landing-date file's rows are all on its landing day; an event-date file's span is known
    only once read (the ingestion ledger then records it).
    """
    if by_event_date(spec):
        return None
    day = landing_day_of(info)
    return day, day


def rows_by_day(frame: pd.DataFrame, spec: UseCaseSpec) -> dict[str, Any]:
    """The positions of each partition's rows, in day order (rows without a day left out).

    Positions, not copies: a caller that writes one day at a time takes each day's rows when
    it writes them (:func:`day_rows`), so a range's rows are never held twice.
    """
    days = day_of_rows(frame, spec)
    groups = frame.groupby(days, sort=True).indices if len(frame) else {}
    return {str(day): positions for day, positions in groups.items() if day is not None}


def day_rows(frame: pd.DataFrame, positions: Any) -> pd.DataFrame:
    """One day's rows of ``frame`` (positions from :func:`rows_by_day`)."""
    return frame.take(positions).reset_index(drop=True)


def days_between(first: str, last: str) -> list[str]:
    """Every day from ``first`` to ``last``, inclusive."""
    start, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    return [(start + dt.timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def today() -> dt.date:
    """Today in UTC, the calendar partitions follow."""
    return dt.datetime.now(dt.UTC).date()
