"""Forecast features: zero-filled daily series, and lags that never look ahead.

The look-ahead test guards the subtle bug of forecasting: a feature of day ``t`` computed from
the target of ``t`` or later (an unshifted rolling mean, a negative shift) scores brilliantly in
the test set and fails in production, where the future is unknown.
"""

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_assets.features.cleaning import clean_frame
from mlops_assets.features.derived import model_spec
from mlops_assets.features.forecast import (
    FILLED,
    derived_features,
    fill_missing_days,
    in_series_sample,
    prepare_history,
    time_folds,
)
from mlops_assets.generators import get_generator
from mlops_assets.ingest.readers import read_landed_file
from mlops_assets.specs import use_case_specs

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "m5_sales_long.csv"


@pytest.fixture(scope="module")
def spec():
    return use_case_specs()["m5_sales"]


@pytest.fixture(scope="module")
def fixture_clean(spec) -> pd.DataFrame:
    raw = read_landed_file(FIXTURE.name, FIXTURE.read_bytes())
    raw["_landed_date"] = "2016-05-03"
    clean, report = clean_frame(raw, spec)
    assert report.invalid_values == {} and report.missing_columns == []
    return clean


@pytest.fixture(scope="module")
def history(spec) -> pd.DataFrame:
    frame = get_generator("m5_sales").history(dt.date(2025, 1, 1), dt.date(2025, 3, 31), seed=4)
    clean, _ = clean_frame(frame, spec)
    return clean


def test_fixture_days_without_rows_are_zero_sales(spec, fixture_clean: pd.DataFrame) -> None:
    filled = fill_missing_days(fixture_clean, spec)
    assert len(fixture_clean) == 12 and len(filled) == 16  # two series x 8 days
    added = filled[filled[FILLED]]
    assert sorted(zip(added["id"].str[:5], added["date"].dt.strftime("%m-%d"), strict=True)) == [
        ("FOODS", "04-28"),
        ("HOBBI", "04-26"),
        ("HOBBI", "04-27"),
        ("HOBBI", "04-29"),
    ]
    assert (added["sales"] == 0).all()
    # Calendar columns come from the other series' row of the same date ...
    assert added["wm_yr_wk"].tolist() == [11613] * 4
    assert added["d"].tolist() == ["d_1917", "d_1915", "d_1916", "d_1918"]
    # ... series attributes and the price from the series' previous day.
    foods = added[added["id"].str.startswith("FOODS")].iloc[0]
    assert (foods["store_id"], foods["sell_price"]) == ("CA_3", 1.5)
    hobbies = added[added["id"].str.startswith("HOBBI")]
    assert set(hobbies["item_id"]) == {"HOBBIES_1_004"} and set(hobbies["sell_price"]) == {3.97}
    # Rows that were there keep their values, a present zero included.
    kept = filled[~filled[FILLED]]
    assert kept["sales"].sum() == fixture_clean["sales"].sum()


def test_filling_stays_within_each_series_range(spec, fixture_clean: pd.DataFrame) -> None:
    late = fixture_clean[fixture_clean["id"].str.startswith("HOBBI")]
    late = late[late["date"] >= "2016-05-01"].assign(id="LATE_1_001_WI_1_evaluation")
    filled = fill_missing_days(pd.concat([fixture_clean, late], ignore_index=True), spec)
    dates = filled[filled["id"] == "LATE_1_001_WI_1_evaluation"]["date"]
    assert dates.dt.strftime("%m-%d").tolist() == ["05-01", "05-02"]


def test_a_row_landed_again_replaces_the_earlier_one(spec, fixture_clean: pd.DataFrame) -> None:
    corrected = fixture_clean.iloc[[0]].assign(sales=40.0, _landed_date="2016-05-04")
    filled = fill_missing_days(pd.concat([corrected, fixture_clean], ignore_index=True), spec)
    first = filled[(filled["id"].str.startswith("FOODS")) & (filled["date"] == "2016-04-25")]
    assert first["sales"].tolist() == [40.0]


def test_features_of_earlier_days_ignore_any_change_to_a_later_day(
    spec, history: pd.DataFrame
) -> None:
    before = prepare_history(history, spec)
    cut = pd.Timestamp("2025-03-01")
    changed = history.copy()
    one_series = changed["id"] == changed["id"].iloc[0]
    changed.loc[one_series & (changed["date"] == cut), "sales"] = 500.0  # a huge future value
    changed = changed[~(~one_series & (changed["date"] == cut + pd.Timedelta(days=3)))]
    after = prepare_history(changed, spec)
    features = derived_features(spec)
    key = ["id", "date"]
    merged = before.merge(after, on=key, suffixes=("", "_after"))
    horizon = min([*spec.forecast.lags, spec.forecast.rolling_shift])
    unchanged = merged["date"] < cut + pd.Timedelta(days=horizon)
    for name in features:
        pd.testing.assert_series_equal(
            merged.loc[unchanged, name],
            merged.loc[unchanged, f"{name}_after"],
            check_names=False,
            obj=f"{name} of days before {cut.date()} + {horizon}",
        )
    # The change is seen once it is in the past: the model does read recent history.
    one_series_rows = merged[
        (merged["id"] == history["id"].iloc[0]) & (merged["date"] == cut + pd.Timedelta(days=7))
    ]
    assert one_series_rows["lag_7_after"].tolist() == [500.0]
    assert (one_series_rows["rolling_mean_7_after"] > one_series_rows["rolling_mean_7"]).all()


def test_lags_and_rolling_means_are_exact(spec, fixture_clean: pd.DataFrame) -> None:
    frame = prepare_history(fixture_clean, spec)
    foods = frame[frame["id"].str.startswith("FOODS")].reset_index(drop=True)
    sales = foods["sales"].tolist()  # 04-25 .. 05-02: 4 0 2 0 5 3 6 2
    assert sales == [4, 0, 2, 0, 5, 3, 6, 2]
    assert np.isnan(foods["lag_7"].iloc[6]) and foods["lag_7"].iloc[7] == 4
    assert foods["rolling_mean_7"].iloc[7] == 4  # the one day 7 days back
    assert foods["lag_28"].isna().all()
    assert foods["day_of_week"].iloc[0] == 0  # 2016-04-25 was a Monday


def test_model_spec_adds_lag_features_only_for_forecasts(spec) -> None:
    modelled = model_spec(spec)
    assert modelled.feature_names == [*spec.feature_names, *derived_features(spec)]
    assert "lag_7" in derived_features(spec) and "rolling_mean_28" in derived_features(spec)
    mushroom = use_case_specs()["mushroom"]  # no lags, no declared derivations
    assert model_spec(mushroom) is mushroom
    assert model_spec(modelled) == modelled  # idempotent


def test_time_folds_validate_on_later_days_only() -> None:
    dates = pd.Series(pd.date_range("2025-01-01", periods=40, freq="D").repeat(3))
    folds = time_folds(dates, 3)
    assert len(folds) == 3
    for train, valid in folds:
        assert dates.iloc[train].max() < dates.iloc[valid].min()
    assert len(folds[-1][0]) > len(folds[0][0])  # an expanding window


def test_a_series_sample_takes_whole_series_the_same_way_every_day(spec, history) -> None:
    """Lags need contiguous days: a sampled series keeps every day, and a day alone decides."""
    assert in_series_sample(history, spec).all(), "no sample in the spec: every series"
    half = spec.model_copy(
        update={"forecast": spec.forecast.model_copy(update={"series_sample": 0.5})}
    )
    mask = in_series_sample(history, half)
    per_series = mask.groupby(history["id"]).agg(["all", "any"])
    assert (per_series["all"] == per_series["any"]).all(), "a series is in or out, whole"
    chosen = per_series.index[per_series["all"]]
    assert 0 < len(chosen) < history["id"].nunique()
    by_day = pd.concat(in_series_sample(day, half) for _, day in history.groupby("date"))
    assert by_day.sort_index().equals(mask), "each day's table filtered alone, the same rows"
    assert in_series_sample(history.iloc[::-1], half).sort_index().equals(mask)
    with pytest.raises(ValueError, match="series_sample"):
        spec.forecast.model_validate({**spec.forecast.model_dump(), "series_sample": 0})
