"""Kaggle's three M5 files land as they are: wide sales read long, calendar and prices joined.

The files are built from generated data in Kaggle's exact layout: the wide sales with CRLF line
ends (one row per series, ``d_1 … d_N``, zeros included, an item's days before its first sale
zero too), ``calendar.csv`` (longer than the sales: it also covers the days to forecast), and
``sell_prices.csv`` tab-separated with a leading unnamed index column and no rows before an
item's first sale. Landed through ``mlops land`` and ingested by ``mlops refresh``.
"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_assets.cli import main
from mlops_assets.environment import Environment
from mlops_assets.features.forecast import prepare_history
from mlops_assets.generators import get_generator
from mlops_assets.ops import launch
from mlops_assets.specs import use_case_specs

FIRST, LAST = dt.date(2016, 3, 6), dt.date(2016, 4, 24)  # d_1864 .. d_1913
EXTRA_CALENDAR_DAYS = 28  # the calendar runs on past the sales, as Kaggle's does
IDS = ["id", "item_id", "dept_id", "cat_id", "store_id", "state_id"]
CALENDAR = [
    "date", "wm_yr_wk", "weekday", "wday", "month", "year", "d", "event_name_1",
    "event_type_1", "event_name_2", "event_type_2", "snap_CA", "snap_TX", "snap_WI",
]  # fmt: skip


@pytest.fixture(scope="module")
def spec():
    return use_case_specs()["m5_sales"]


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    """Every series on every day (zeros included, as Kaggle's wide file has them); series 0
    first sold on its 18th day (no earlier price)."""
    generated = get_generator("m5_sales").history(FIRST, LAST, seed=3)
    ids = sorted(generated["id"].unique())[:6]
    generated = generated[generated["id"].isin(ids)]
    per_day = generated.drop_duplicates("date").set_index("date")
    per_series = generated.drop_duplicates("id").set_index("id")
    dates = sorted(per_day.index)
    grid = pd.MultiIndex.from_product([ids, dates], names=["id", "date"]).to_frame(index=False)
    frame = grid.merge(generated[["id", "date", "sales", "sell_price"]], how="left")
    frame["sales"] = frame["sales"].fillna(0).astype(int)
    frame["sell_price"] = frame.groupby("id")["sell_price"].transform(lambda s: s.ffill().bfill())
    for column in IDS[1:]:
        frame[column] = frame["id"].map(per_series[column])
    for column in CALENDAR:
        if column in per_day.columns and column != "date":
            frame[column] = frame["date"].map(per_day[column])
    # one price per item and week, as Kaggle's file has
    frame["sell_price"] = frame.groupby(["id", "wm_yr_wk"])["sell_price"].transform("first")
    late = ids[0]
    first_sold = pd.Timestamp(FIRST) + pd.Timedelta(days=17)
    frame.loc[(frame["id"] == late) & (pd.to_datetime(frame["date"]) < first_sold), "sales"] = 0
    return frame.assign(late=frame["id"] == late, first_sold=first_sold)


def _late_weeks(history: pd.DataFrame) -> set[int]:
    """Walmart weeks wholly before the late item's first sale (no price row for them)."""
    dates = pd.to_datetime(history["date"])
    before = history[history["late"] & (dates < history["first_sold"])]
    after = history[history["late"] & (dates >= history["first_sold"])]
    return set(before["wm_yr_wk"]) - set(after["wm_yr_wk"])


def kaggle_sales(history: pd.DataFrame) -> bytes:
    wide = history.pivot_table(index=IDS, columns="d", values="sales", aggfunc="first")
    wide = wide[sorted(wide.columns, key=lambda d: int(d.split("_")[1]))].reset_index()
    return wide.to_csv(index=False, lineterminator="\r\n").encode()


def kaggle_calendar(history: pd.DataFrame) -> bytes:
    days = history.drop_duplicates("date").sort_values("date")
    calendar = days[[c for c in CALENDAR if c in days.columns]].copy()
    dates = pd.to_datetime(calendar["date"])
    calendar["weekday"] = dates.dt.day_name()
    calendar["wday"] = (dates.dt.dayofweek + 2) % 7 + 1
    calendar["month"], calendar["year"] = dates.dt.month, dates.dt.year
    last_d = int(calendar["d"].iloc[-1].split("_")[1])
    future = pd.DataFrame(
        {
            "date": [(LAST + dt.timedelta(days=n)).isoformat() for n in range(1, 29)],
            "d": [f"d_{last_d + n}" for n in range(1, 29)],
            "wm_yr_wk": 11613,
            "snap_CA": 0, "snap_TX": 0, "snap_WI": 0,
        }
    )  # fmt: skip
    calendar = pd.concat([calendar, future], ignore_index=True)[CALENDAR]
    return calendar.to_csv(index=False).encode()


def kaggle_prices(history: pd.DataFrame) -> bytes:
    weeks = history.drop_duplicates(["store_id", "item_id", "wm_yr_wk"])
    weeks = weeks[~(weeks["late"] & weeks["wm_yr_wk"].isin(_late_weeks(history)))]
    prices = weeks[["store_id", "item_id", "wm_yr_wk", "sell_price"]].reset_index(drop=True)
    buffer = io.StringIO()
    prices.to_csv(buffer, sep="\t")  # pandas' index as an unnamed first column
    return buffer.getvalue().encode()


def land(tmp_path: Path, name: str, data: bytes, day: str = "2026-11-30") -> None:
    path = tmp_path / name
    path.write_bytes(data)
    assert main(["land", "m5_sales", str(path), "--date", day]) == 0


def stored(home: Path, asset: str) -> pd.DataFrame:
    paths = sorted((home / "storage" / "m5_sales" / asset).glob("*.parquet"))
    return pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)


def test_kaggle_files_land_as_they_are(mlops_home: Path, tmp_path, spec, history, capsys):
    sales = kaggle_sales(history)
    assert b"\r\n" in sales and b",d_1864," in sales
    land(tmp_path, "calendar.csv", kaggle_calendar(history))
    assert "reference `calendar` (joined on d)" in capsys.readouterr().out
    env = Environment.from_env()
    alone = launch.refresh(spec, env, train=False)
    assert alone.ingested == [] and alone.unplaced == {}  # a reference file is never data

    land(tmp_path, "sales_train_evaluation.csv", sales)
    waiting = launch.refresh(spec, env, train=False)  # the prices have not landed yet
    assert waiting.ingested == []
    (why,) = waiting.unplaced.values()
    assert "waits for a reference file" in why and "`prices`" in why and "sell_price" in why

    land(tmp_path, "sell_prices.csv", kaggle_prices(history))
    outcome = launch.refresh(spec, env, train=False)
    assert outcome.success and outcome.unplaced == {}
    assert len(outcome.ingested) == 1  # one run over the file's whole range

    clean = stored(mlops_home, "clean_data")
    clean["date"] = pd.to_datetime(clean["date"])
    # every series and day of the sales, except the late item's days before its first price
    dates = pd.to_datetime(history["date"])
    no_price = history["late"] & history["wm_yr_wk"].isin(_late_weeks(history))
    expected = history[~no_price]
    assert len(clean) == len(expected)
    assert clean["date"].min() == pd.Timestamp(FIRST) and clean["date"].max() == pd.Timestamp(LAST)
    late = clean[clean["id"] == history.loc[history["late"], "id"].iloc[0]]
    assert late["date"].min() == dates[history["late"] & ~no_price].min()
    # the joins: the calendar gave every row its date, week and SNAP days; the prices its price
    merged = clean.merge(
        expected.assign(date=pd.to_datetime(expected["date"])),
        on=["id", "date"],
        suffixes=("", "_generated"),
    )
    assert len(merged) == len(clean)
    for column in ("sales", "wm_yr_wk", "snap_CA", "snap_WI", "sell_price"):
        np.testing.assert_allclose(
            merged[column].astype(float), merged[f"{column}_generated"].astype(float)
        )
    assert merged["d"].eq(merged["d_generated"]).all()
    # the calendar's days after the sales made no partitions
    days = sorted(p.stem for p in (mlops_home / "storage" / "m5_sales" / "raw_data").glob("*"))
    assert days[-1] == LAST.isoformat()


def test_long_file_with_only_sold_days_gets_the_calendar_and_zero_days(
    mlops_home: Path, tmp_path, spec, history
):
    """The real M5 subset's shape: long rows of days with sales only, no SNAP columns."""
    sold = history[history["sales"].astype(float) > 0]
    long = sold.drop(columns=["snap_CA", "snap_TX", "snap_WI", "late", "first_sold"])
    land(tmp_path, "m5_calendar.csv", kaggle_calendar(history))
    land(tmp_path, "m5_subset_long.csv", long.to_csv(index=False).encode())
    outcome = launch.refresh(spec, Environment.from_env(), train=False)
    assert outcome.success and outcome.unplaced == {}, outcome.unplaced

    clean = stored(mlops_home, "clean_data")
    assert len(clean) == len(sold)  # nothing invented at ingestion
    assert clean["snap_CA"].notna().all()  # joined from the calendar
    filled = prepare_history(clean, spec)  # the training feature path
    series = filled.groupby("id")["date"].agg(["min", "max"])
    span = (series["max"] - series["min"]).dt.days + 1
    assert len(filled) == int(span.sum())  # every day of every series from its first sale
    zeros = filled[filled["_filled"]]
    assert len(zeros) == len(filled) - len(sold) > 0
    assert (zeros["sales"] == 0).all()
