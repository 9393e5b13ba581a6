"""The stored history a forecast service reads lags from: in memory, refreshed by change token."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from mlops_assets.features.history import StoredHistory
from mlops_assets.specs import use_case_specs
from mlops_assets.storage.objectstore import LocalObjectStore
from mlops_assets.storage.tables import table_key, write_table

DAYS = [dt.date(2025, 3, 1) + dt.timedelta(days=n) for n in range(5)]


class CountingStore(LocalObjectStore):
    """A local store that counts listings and reads."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.lists = 0
        self.reads = 0

    def list(self, prefix: str = "", start_after: str | None = None):
        self.lists += 1
        return super().list(prefix, start_after)

    def get_bytes(self, key: str) -> bytes:
        self.reads += 1
        return super().get_bytes(key)


@pytest.fixture
def store(tmp_path: Path) -> CountingStore:
    store = CountingStore(tmp_path / "lake")
    for number, day in enumerate(DAYS):
        write(store, day, float(number))
    return store


def write(store: CountingStore, day: dt.date, sales: float) -> None:
    rows = pd.DataFrame({"id": ["a"], "date": [pd.Timestamp(day)], "sales": [sales]})
    write_table(store, table_key(["m5_sales", "clean_data"], day.isoformat()), rows)


def test_a_service_lists_the_store_once_per_refresh_and_reads_changed_days_only(store) -> None:
    now = {"t": 0.0}
    history = StoredHistory(
        store, use_case_specs()["m5_sales"], refresh_s=10, clock=lambda: now["t"]
    )
    first = history.rows(DAYS[1], DAYS[3])
    assert first["sales"].tolist() == [1.0, 2.0, 3.0] and (store.lists, store.reads) == (1, 3)
    for _ in range(50):  # requests within the refresh interval: no listing, no read
        assert history.rows(DAYS[1], DAYS[3]) is first
    assert history.rows(DAYS[0], DAYS[1])["sales"].tolist() == [0.0, 1.0]
    assert (store.lists, store.reads) == (1, 4)
    write(store, DAYS[2], 20.0)  # a corrected day, then a new one
    write(store, DAYS[-1] + dt.timedelta(days=1), 5.0)
    assert history.rows(DAYS[1], DAYS[3]) is first  # not looked at before the refresh is due
    now["t"] = 10.0
    assert history.rows(DAYS[1], DAYS[3])["sales"].tolist() == [1.0, 20.0, 3.0]
    assert (store.lists, store.reads) == (2, 5)
    assert history.rows(DAYS[4], DAYS[4] + dt.timedelta(days=1))["sales"].tolist() == [4.0, 5.0]


def test_a_batch_job_lists_from_the_first_day_at_every_call(store) -> None:
    history = StoredHistory(store, use_case_specs()["m5_sales"])
    assert history.rows(DAYS[3], DAYS[4])["sales"].tolist() == [3.0, 4.0]
    write(store, DAYS[3], 30.0)
    assert history.rows(DAYS[3], DAYS[4])["sales"].tolist() == [30.0, 4.0]
    assert store.lists == 2
    assert history.rows(dt.date(2024, 1, 1), dt.date(2024, 1, 2)).empty


def test_warming_reads_the_newest_days_so_a_first_request_reads_none(store) -> None:
    history = StoredHistory(store, use_case_specs()["m5_sales"], refresh_s=60)
    assert history.warm(3) == 3 and (store.lists, store.reads) == (1, 3)
    assert history.rows(DAYS[2], DAYS[4])["sales"].tolist() == [2.0, 3.0, 4.0]
    assert (store.lists, store.reads) == (1, 3)
    assert history.rows(DAYS[1], DAYS[2])["sales"].tolist() == [1.0, 2.0]  # an older day: read
    assert store.reads == 4
    assert history.warm(0) == 0 and history.warm(50) == 5
