"""Deterministic train/test splits and the training window.

A row's side is decided by a hash of its identity alone, so it never moves as data grows, and
rows with the same identity (duplicates, the same item-outlet on another day) share a side.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable

import numpy as np
import pandas as pd

from mlops_assets import names
from mlops_assets.features.quality import usable_days
from mlops_assets.specs.model import HashSplit, TimeSplit, UseCaseSpec
from mlops_assets.storage.objectstore import ObjectStore
from mlops_assets.storage.tables import read_table, stored_partitions, table_key

BUCKETS = 10_000


def identity_columns(spec: UseCaseSpec) -> list[str]:
    """Columns whose values identify a row for the split (derived features add nothing)."""
    if isinstance(spec.split, HashSplit) and spec.split.by:
        return list(spec.split.by)
    derived = {d.name for d in spec.derived}
    return [name for name in spec.feature_names if name not in derived]


def is_test_row(frame: pd.DataFrame, spec: UseCaseSpec) -> pd.Series:
    """``True`` for rows in the test set."""
    split = spec.split
    if isinstance(split, TimeSplit):
        column = spec.partitions.date_column or "_landed_date"
        dates = pd.to_datetime(frame[column])
        cutoff = dates.max() - pd.Timedelta(days=split.test_days - 1)
        return dates >= cutoff
    identity = frame[identity_columns(spec)].astype(str)
    salted = identity.assign(__salt=split.salt)
    hashes = pd.util.hash_pandas_object(salted, index=False).to_numpy(dtype=np.uint64)
    return pd.Series((hashes % BUCKETS) < split.test_fraction * BUCKETS, index=frame.index)


def window_partitions(partitions: list[str], window_days: int | None) -> list[str]:
    """The stored partitions within ``window_days`` of the newest one (all when ``None``)."""
    if not partitions or window_days is None:
        return sorted(partitions)
    newest = max(dt.date.fromisoformat(p) for p in partitions)
    oldest = newest - dt.timedelta(days=window_days - 1)
    return sorted(p for p in partitions if dt.date.fromisoformat(p) >= oldest)


def data_version(frame: pd.DataFrame) -> str:
    """A content hash of a table: the same rows give the same version."""
    hashes = pd.util.hash_pandas_object(frame.astype(str), index=False).to_numpy()
    return hashlib.sha1(hashes.tobytes()).hexdigest()[:12]


class NoTrainingDataError(RuntimeError):
    """No stored clean day can be trained on; the message says what was excluded and why."""


def load_window(
    store: ObjectStore,
    spec: UseCaseSpec,
    window_days: int | None,
    rows: Callable[[pd.DataFrame], pd.Series] | None = None,
) -> tuple[pd.DataFrame, list[str], dict[str, str]]:
    """Clean days inside the window that are stored and passed their checks.

    Days never landed are skipped, not an error; days whose checks failed are returned with the
    reason, for the metadata. ``rows``: a row mask applied to each day as it is read (a forecast's
    sample of series).

    Raises:
        NoTrainingDataError: No stored day passed its checks.
    """
    clean = names.asset_path(spec.name, names.CLEAN_DATA)
    stored = stored_partitions(store, clean)
    usable, excluded = usable_days(store, spec, stored)
    chosen = window_partitions(usable, window_days)
    if not chosen:
        raise NoTrainingDataError(
            f"{spec.name}: no clean_data partition that passed its checks is stored "
            f"in {store.uri}; excluded: {excluded or 'none'}"
        )
    frames = [read_table(store, table_key(clean, day)) for day in chosen]
    if rows is not None:
        frames = [frame[rows(frame)] for frame in frames]
    return pd.concat(frames, ignore_index=True), chosen, excluded
