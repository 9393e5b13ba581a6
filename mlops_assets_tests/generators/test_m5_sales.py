"""The M5 generator: the long format's columns, domains and quirks, reproducibly."""

import datetime as dt

import pandas as pd
import pytest

from mlops_assets.features.cleaning import clean_frame
from mlops_assets.features.forecast import fill_missing_days
from mlops_assets.features.validation import validate_frame
from mlops_assets.generators import DriftConfig, available_generators, get_generator
from mlops_assets.generators.m5_sales import COLUMNS, walmart_week
from mlops_assets.specs import use_case_specs

FIRST, LAST = dt.date(2025, 11, 1), dt.date(2026, 1, 31)


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    return get_generator("m5_sales").history(FIRST, LAST, seed=2)


def test_columns_and_domains_clean_without_problems(history: pd.DataFrame) -> None:
    assert "m5_sales" in available_generators()
    assert list(history.columns) == COLUMNS
    spec = use_case_specs()["m5_sales"]
    clean, report = clean_frame(history.astype(str).replace("None", ""), spec)
    assert report.invalid_values == {} and len(clean) == len(history)
    assert validate_frame(clean, spec) == []
    assert history["id"].nunique() == 30 and history["store_id"].nunique() == 3
    assert (history["id"] == history["item_id"] + "_" + history["store_id"] + "_evaluation").all()
    assert set(history["state_id"]) == {"CA", "TX", "WI"}


def test_quirks(history: pd.DataFrame) -> None:
    spec = use_case_specs()["m5_sales"]
    clean, _ = clean_frame(history, spec)
    full = fill_missing_days(clean, spec)
    # Missing zero-sales rows: filling adds days, all of them zero.
    assert full["_filled"].sum() > 0.1 * len(history)
    # Intermittent: slow series sell nothing on most days, fast ones rarely.
    zero_share = (full["sales"] == 0).groupby(full["id"]).mean()
    assert zero_share.max() > 0.7 and zero_share.min() < 0.1
    # Weekly seasonality: weekends sell more.
    weekday = full.groupby(full["date"].dt.dayofweek)["sales"].mean()
    assert weekday[[5, 6]].min() > weekday[[0, 1, 2]].max()
    # Christmas: stores closed.
    assert full[full["date"] == "2025-12-25"]["sales"].sum() == 0
    # Prices are set per Walmart week: one price per series and week.
    assert (history.groupby(["id", "wm_yr_wk"])["sell_price"].nunique() == 1).all()
    # SNAP: CA days are the first ten of the month.
    snap = history.drop_duplicates("date").set_index("date")["snap_CA"]
    assert snap["2025-12-05"] == 1 and snap["2025-12-20"] == 0
    types = {"Cultural", "National", "Religious", "Sporting"}
    assert set(history["event_type_1"].dropna()) <= types


def test_days_are_the_same_alone_or_in_a_history(history: pd.DataFrame) -> None:
    day = dt.date(2025, 12, 3)
    alone = get_generator("m5_sales").generate(0, day, seed=2)
    inside = history[history["date"] == day.isoformat()].reset_index(drop=True)
    pd.testing.assert_frame_equal(alone, inside)
    drifted = get_generator("m5_sales").generate(0, day, 2, DriftConfig(target_scale=3.0))
    assert drifted["sales"].sum() > alone["sales"].sum()


def test_walmart_week_matches_the_m5_calendar() -> None:
    assert walmart_week(dt.date(2011, 1, 29)) == 11101  # d_1
    assert walmart_week(dt.date(2016, 4, 25)) == 11613  # d_1914
    assert walmart_week(dt.date(2016, 4, 30)) == 11614
