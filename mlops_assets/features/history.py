"""Stored history for serving a forecast: the clean days a request's lag features are read from.

A forecast request carries a series, a date and what is known in advance; the lags come from the
``clean_data`` partitions in the asset storage (the same objects training read), so clients never
send them and the service derives them exactly as training did.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from mlops_assets import names
from mlops_assets.specs.model import UseCaseSpec
from mlops_assets.storage.objectstore import ObjectStore
from mlops_assets.storage.tables import read_table


class StoredHistory:
    """Clean days of one use case, read from object storage on demand.

    Each day's object is cached with its change token (mtime or ETag), so a day re-ingested
    after a correction is read again and an unchanged day is read once per process.
    """

    def __init__(self, store: ObjectStore, spec: UseCaseSpec) -> None:
        self.store = store
        self.spec = spec
        self._cache: dict[tuple[str, str], pd.DataFrame] = {}

    def rows(self, first: dt.date, last: dt.date) -> pd.DataFrame:
        """The clean rows of the stored days from ``first`` to ``last`` (empty if none)."""
        prefix = "/".join(names.asset_path(self.spec.name, names.CLEAN_DATA)) + "/"
        frames = []
        for info in self.store.list(prefix, start_after=f"{prefix}{first - dt.timedelta(1)}~"):
            day = info.key[len(prefix) :].removesuffix(".parquet")
            if not info.key.endswith(".parquet") or "/" in day:
                continue
            if day > last.isoformat():
                break
            if day < first.isoformat():
                continue
            cached = self._cache.get((info.key, info.version))
            if cached is None:
                cached = read_table(self.store, info.key)
                self._cache[(info.key, info.version)] = cached
            frames.append(cached)
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
