import datetime as dt

import numpy as np
import pandas as pd
import pytest

from mlops_assets.features.cleaning import clean_frame
from mlops_assets.features.validation import validate_frame
from mlops_assets.generators import (
    DriftConfig,
    Generator,
    available_generators,
    get_generator,
    write_batch,
)
from mlops_assets.specs import use_case_specs

COLUMNS = [
    "Item_Identifier",
    "Item_Weight",
    "Item_Fat_Content",
    "Item_Visibility",
    "Item_Type",
    "Item_MRP",
    "Outlet_Identifier",
    "Outlet_Establishment_Year",
    "Outlet_Size",
    "Outlet_Location_Type",
    "Outlet_Type",
    "Item_Outlet_Sales",
]
ITEM_ATTRIBUTES = ["Item_Weight", "Item_Type"]
OUTLET_ATTRIBUTES = [
    "Outlet_Establishment_Year",
    "Outlet_Size",
    "Outlet_Location_Type",
    "Outlet_Type",
]
DAY = dt.date(2024, 1, 1)
REAL_OUTLET_NUMBERS = [10, 13, 17, 18, 19, 27, 35, 45, 46, 49]


@pytest.fixture(scope="module")
def spec():
    return use_case_specs()["bigmart_sales"]


@pytest.fixture(scope="module")
def generator():
    return get_generator("bigmart_sales")


@pytest.fixture(scope="module")
def frame(generator):
    return generator.generate(5000, DAY, seed=7)


def test_registry(generator, spec):
    assert "bigmart_sales" in available_generators()
    assert spec.generator == "bigmart_sales"
    assert isinstance(generator, Generator)
    with pytest.raises(KeyError, match="unknown generator"):
        get_generator("no_such_use_case")


def test_columns_in_real_order(frame):
    assert list(frame.columns) == COLUMNS
    assert len(frame) == 5000


def test_empty_batch(generator):
    empty = generator.generate(0, DAY, seed=1)
    assert list(empty.columns) == COLUMNS
    assert empty.empty


def test_reproducible(generator, frame):
    again = generator.generate(5000, DAY, seed=7)
    pd.testing.assert_frame_equal(frame, again)


def test_days_and_seeds_differ(generator, frame):
    other_day = generator.generate(5000, DAY + dt.timedelta(days=1), seed=7)
    other_seed = generator.generate(5000, DAY, seed=8)
    assert not frame.equals(other_day)
    assert not frame.equals(other_seed)
    assert not np.allclose(frame["Item_Outlet_Sales"], other_day["Item_Outlet_Sales"])


def test_value_domains(frame):
    ids = frame["Item_Identifier"]
    assert ids.str.fullmatch(r"(FD|DR|NC)[A-Z]\d{2}").all()
    assert 1000 <= ids.nunique() <= 1559
    assert set(frame["Outlet_Identifier"]) == {f"OUT{n:03d}" for n in REAL_OUTLET_NUMBERS}
    weights = frame["Item_Weight"].dropna()
    assert weights.between(4.5, 21.4).all()
    assert frame["Item_MRP"].between(30, 272).all()
    assert frame["Item_Visibility"].between(0, 0.33).all()
    sales = frame["Item_Outlet_Sales"]
    assert (sales >= 33).all()
    assert sales.between(33, 13087).mean() > 0.995
    assert (sales.round(4) == sales).all()
    # Item types follow the id prefix.
    prefix = ids.str[:2]
    drinks = set(frame.loc[prefix == "DR", "Item_Type"])
    non_consumables = set(frame.loc[prefix == "NC", "Item_Type"])
    assert drinks <= {"Soft Drinks", "Hard Drinks", "Dairy"}
    assert non_consumables == {"Household", "Health and Hygiene", "Others"}
    assert frame.loc[prefix == "NC", "Item_Fat_Content"].isin(["Low Fat", "LF", "low fat"]).all()
    assert frame["Item_Type"].nunique() == 16


def test_real_outlets_have_fixed_attributes(frame):
    outlets = frame.groupby("Outlet_Identifier")[OUTLET_ATTRIBUTES].first()
    per_outlet = frame.groupby("Outlet_Identifier")[OUTLET_ATTRIBUTES].nunique(dropna=False)
    assert (per_outlet == 1).all().all()
    assert outlets.loc["OUT010"].tolist()[0] == 1998
    assert pd.isna(outlets.loc["OUT010", "Outlet_Size"])
    assert outlets.loc["OUT010", "Outlet_Type"] == "Grocery Store"
    assert outlets.loc["OUT013"].tolist() == [1987, "High", "Tier 3", "Supermarket Type1"]
    assert outlets.loc["OUT018"].tolist() == [2009, "Medium", "Tier 3", "Supermarket Type2"]
    assert outlets.loc["OUT019"].tolist() == [1985, "Small", "Tier 1", "Grocery Store"]
    assert outlets.loc["OUT027"].tolist() == [1985, "Medium", "Tier 3", "Supermarket Type3"]
    assert outlets.loc["OUT049"].tolist() == [1999, "Medium", "Tier 1", "Supermarket Type1"]
    for missing_size in ["OUT010", "OUT017", "OUT045"]:
        assert pd.isna(outlets.loc[missing_size, "Outlet_Size"])


def test_item_attributes_stable_across_days(generator):
    days = [
        generator.generate(3000, DAY + dt.timedelta(days=d), seed=s)
        for d, s in [(0, 1), (5, 1), (40, 99)]
    ]
    both = pd.concat(days, ignore_index=True)
    with_weight = both.dropna(subset=["Item_Weight"])
    assert (with_weight.groupby("Item_Identifier")["Item_Weight"].nunique() == 1).all()
    assert (both.groupby("Item_Identifier")["Item_Type"].nunique() == 1).all()
    canonical = both["Item_Fat_Content"].str.casefold().replace({"lf": "low fat", "reg": "regular"})
    assert (canonical.groupby(both["Item_Identifier"]).nunique() == 1).all()
    # The price is the item's base price with a small per-row deviation.
    spread = both.groupby("Item_Identifier")["Item_MRP"].agg(lambda s: s.max() / s.min())
    assert spread.max() < 1.1


def test_missing_rates(frame):
    assert 0.12 <= frame["Item_Weight"].isna().mean() <= 0.22
    assert 0.22 <= frame["Outlet_Size"].isna().mean() <= 0.34
    no_weight = frame.loc[frame["Item_Weight"].isna(), "Outlet_Identifier"]
    assert set(no_weight) == {"OUT019", "OUT027"}


def test_dirty_spellings_and_zero_visibility(frame):
    counts = frame["Item_Fat_Content"].value_counts(normalize=True)
    assert set(counts.index) == {"Low Fat", "Regular", "LF", "low fat", "reg"}
    assert counts["Low Fat"] > counts["Regular"] > 0.25
    assert 0.02 <= counts[["LF", "low fat", "reg"]].sum() <= 0.09
    zero = (frame["Item_Visibility"] == 0).mean()
    assert 0.03 <= zero <= 0.09
    present = frame.loc[frame["Item_Visibility"] > 0, "Item_Visibility"]
    assert present.min() >= 0.003
    assert present.mean() > present.median()  # right-skewed


def test_clean_frame_is_inside_spec_domains(frame, spec):
    cleaned, report = clean_frame(frame, spec)
    assert report.rows_out == len(frame)
    assert not report.invalid_values
    assert not report.missing_columns and not report.unexpected_columns
    assert validate_frame(cleaned, spec) == []
    assert set(cleaned["Item_Fat_Content"]) == {"Low Fat", "Regular"}
    assert cleaned["Item_Visibility"].isna().mean() == pytest.approx(
        (frame["Item_Visibility"] == 0).mean()
    )


def test_drift_shifts_feature_and_target(generator, frame, spec):
    shifted = generator.generate(
        5000, DAY, seed=7, drift=DriftConfig(shift_features={"Item_MRP": 1.0})
    )
    std = frame["Item_MRP"].std()
    assert shifted["Item_MRP"].mean() - frame["Item_MRP"].mean() == pytest.approx(std, rel=0.05)
    assert shifted["Item_Outlet_Sales"].mean() > frame["Item_Outlet_Sales"].mean() * 1.2
    pd.testing.assert_series_equal(shifted["Item_Type"], frame["Item_Type"])

    less_visible = generator.generate(
        5000, DAY, seed=7, drift=DriftConfig(shift_features={"Item_Visibility": -0.5})
    )
    assert less_visible["Item_Visibility"].mean() < frame["Item_Visibility"].mean()

    scaled = generator.generate(5000, DAY, seed=7, drift=DriftConfig(target_scale=1.5))
    ratio = scaled["Item_Outlet_Sales"].mean() / frame["Item_Outlet_Sales"].mean()
    assert ratio == pytest.approx(1.5, rel=0.01)
    pd.testing.assert_frame_equal(scaled[COLUMNS[:-1]], frame[COLUMNS[:-1]])

    for drifted in (shifted, less_visible, scaled):
        cleaned, _ = clean_frame(drifted, spec)
        assert validate_frame(cleaned, spec) == []

    identity = generator.generate(5000, DAY, seed=7, drift=DriftConfig())
    pd.testing.assert_frame_equal(identity, frame)


def test_drift_rejects_unknown_feature(generator):
    with pytest.raises(KeyError, match="cannot shift"):
        generator.generate(10, DAY, seed=7, drift=DriftConfig(shift_features={"Nope": 1.0}))
    with pytest.raises(ValueError, match="target_scale"):
        DriftConfig(target_scale=0)


def test_write_batch_round_trip(tmp_path, generator):
    batch = generator.generate(300, DAY, seed=3)
    path = write_batch(batch, tmp_path, "bigmart_sales", DAY)
    assert path == tmp_path / "bigmart_sales" / "2024-01-01" / "batch.csv"
    back = pd.read_csv(path)
    assert back.shape == batch.shape
    assert list(back.columns) == COLUMNS
    assert back["Item_Weight"].isna().sum() == batch["Item_Weight"].isna().sum()
    assert back["Outlet_Size"].isna().sum() == batch["Outlet_Size"].isna().sum()
    np.testing.assert_allclose(back["Item_Outlet_Sales"], batch["Item_Outlet_Sales"])
    assert sorted(p.name for p in path.parent.iterdir()) == ["batch.csv"]

    other = write_batch(batch.head(5), tmp_path, "bigmart_sales", DAY, name="late.csv")
    assert other.parent == path.parent
    assert pd.read_csv(other).shape == (5, len(COLUMNS))


def _features(frame, spec):
    cleaned, _ = clean_frame(frame, spec)
    features = cleaned[spec.feature_names].copy()
    for column in spec.features:
        if column.type == "categorical":
            features[column.name] = pd.Categorical(
                features[column.name], categories=column.categories
            ).codes.astype(float)
            features.loc[features[column.name] < 0, column.name] = np.nan
        else:
            features[column.name] = features[column.name].astype("float64")
    return features, cleaned[spec.target.name].to_numpy(dtype=float)


def test_sales_carry_signal(generator, spec):
    from sklearn.ensemble import HistGradientBoostingRegressor

    train_x, train_y = _features(generator.generate(3000, DAY, seed=11), spec)
    test_x, test_y = _features(generator.generate(1000, DAY + dt.timedelta(days=1), seed=11), spec)
    categorical = [c.type == "categorical" for c in spec.features]
    model = HistGradientBoostingRegressor(categorical_features=categorical, random_state=0)
    model.fit(train_x, train_y)
    rmse = float(np.sqrt(np.mean((model.predict(test_x) - test_y) ** 2)))
    baseline = float(np.sqrt(np.mean((train_y.mean() - test_y) ** 2)))
    assert rmse <= 0.6 * baseline, (rmse, baseline)
