"""Stored history for serving a forecast: the clean days a request's lag features are read from.

A forecast request carries a series, a date and what is known in advance; the lags come from the
``clean_data`` partitions in the asset storage (the same objects training read), so clients never
send them and the service derives them exactly as training did.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import OrderedDict
from collections.abc import Callable

import pandas as pd

from mlops_assets import names
from mlops_assets.specs.model import UseCaseSpec
from mlops_assets.storage.objectstore import ObjectStore
from mlops_assets.storage.tables import read_table

WINDOWS_KEPT = 8
"""Windows of days (first, last) whose concatenated rows are kept for the next request."""


class StoredHistory:
    """Clean days of one use case, held in memory and refreshed by their change tokens.

    The store is listed at most every ``refresh_s`` seconds (0: at every call, as a batch job
    wants); each day's object is read once per change token (mtime or ETag), so a day
    re-ingested after a correction is read again and an unchanged day never is. The rows of a
    window of days are kept while none of its days changed, so a service answering requests
    for the same dates does not list the store, read objects or concatenate frames again.

    Args:
        store: The asset storage.
        spec: The use case.
        refresh_s: Seconds a listing of the stored days is trusted (the service: its
            champion poll interval).
        clock: Monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        store: ObjectStore,
        spec: UseCaseSpec,
        refresh_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.spec = spec
        self.refresh_s = refresh_s
        self.clock = clock
        self.listings = 0
        self._prefix = "/".join(names.asset_path(spec.name, names.CLEAN_DATA)) + "/"
        self._days: list[tuple[str, str, str]] = []  # (day, key, change token), by day
        self._listed_at: float | None = None
        self._cache: dict[tuple[str, str], pd.DataFrame] = {}
        self._windows: OrderedDict[tuple[str, str], tuple[tuple, pd.DataFrame]] = OrderedDict()

    def rows(self, first: dt.date, last: dt.date) -> pd.DataFrame:
        """The clean rows of the stored days from ``first`` to ``last`` (empty if none).

        The frame may be shared with later calls: callers must not change it in place.
        """
        low, high = first.isoformat(), last.isoformat()
        chosen = [(key, token) for day, key, token in self._listing(first) if low <= day <= high]
        tokens = tuple(chosen)
        window = self._windows.get((low, high))
        if window is not None and window[0] == tokens:
            self._windows.move_to_end((low, high))
            return window[1]
        frames = [self._frame(key, token) for key, token in chosen]
        result = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        self._windows[(low, high)] = (tokens, result)
        while len(self._windows) > WINDOWS_KEPT:
            self._windows.popitem(last=False)
        return result

    def warm(self, days: int) -> int:
        """Read the newest ``days`` stored days into memory; returns how many were read.

        A service calls it at start, so its first forecast request reads no objects (it cost
        3 s for 1,000 M5 series where the next ones took 1.4 s: 63 days read one by one).
        """
        everything = self._listing(dt.date.min + dt.timedelta(days=1))  # from the first day
        newest = everything[-days:] if days > 0 else []
        for _, key, token in newest:
            self._frame(key, token)
        return len(newest)

    def _listing(self, first: dt.date) -> list[tuple[str, str, str]]:
        """The stored days: listed from ``first`` at every call, or all of them cached."""
        now = self.clock()
        fresh = self._listed_at is not None and now - self._listed_at < self.refresh_s
        if self.refresh_s and fresh:
            return self._days
        start = None if self.refresh_s else f"{self._prefix}{first - dt.timedelta(1)}~"
        days = []
        for info in self.store.list(self._prefix, start_after=start):
            day = info.key[len(self._prefix) :].removesuffix(".parquet")
            if info.key.endswith(".parquet") and "/" not in day:
                days.append((day, info.key, info.version))
        self.listings += 1
        if not self.refresh_s:
            return days
        self._days, self._listed_at = sorted(days), now
        known = {(key, token) for _, key, token in self._days}
        self._cache = {k: v for k, v in self._cache.items() if k in known}
        return self._days

    def _frame(self, key: str, token: str) -> pd.DataFrame:
        cached = self._cache.get((key, token))
        if cached is None:
            cached = read_table(self.store, key)
            self._cache[(key, token)] = cached
        return cached
