"""Deterministic train/test splits and the training window.

A row's side is decided by a hash of its identity alone, so it never moves as data grows, and
rows with the same identity (duplicates, the same item-outlet on another day) share a side.
"""

from __future__ import annotations

import datetime as dt
import hashlib

import numpy as np
import pandas as pd

from mlops_assets.specs.model import HashSplit, TimeSplit, UseCaseSpec

BUCKETS = 10_000


def identity_columns(spec: UseCaseSpec) -> list[str]:
    """Columns whose values identify a row for the split."""
    if isinstance(spec.split, HashSplit) and spec.split.by:
        return list(spec.split.by)
    return spec.feature_names


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
