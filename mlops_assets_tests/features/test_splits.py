"""The split is a function of row identity only: rows never change side as data grows."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from mlops_assets.features.cleaning import clean_frame
from mlops_assets.features.splits import data_version, is_test_row, window_partitions
from mlops_assets.generators import get_generator
from mlops_assets.specs import use_case_specs
from mlops_assets.specs.catalog import parse_spec


@pytest.fixture(scope="module")
def spec():
    return use_case_specs()["bigmart_sales"]


def days_of_data(spec, n_days: int) -> pd.DataFrame:
    generator = get_generator("bigmart_sales")
    frames = []
    for offset in range(n_days):
        day = dt.date(2025, 3, 1) + dt.timedelta(days=offset)
        frame, _ = clean_frame(generator.generate(300, day, seed=1), spec)
        frame["_landed_date"] = day.isoformat()
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def test_rows_keep_their_side_as_data_grows(spec) -> None:
    small = days_of_data(spec, 2)
    large = days_of_data(spec, 5)
    side_small = dict(
        zip(
            small["Item_Identifier"] + small["Outlet_Identifier"],
            is_test_row(small, spec),
            strict=True,
        )
    )
    side_large = dict(
        zip(
            large["Item_Identifier"] + large["Outlet_Identifier"],
            is_test_row(large, spec),
            strict=True,
        )
    )
    assert side_small
    assert all(side_large[key] == side for key, side in side_small.items())


def test_same_identity_same_side(spec) -> None:
    data = days_of_data(spec, 3)
    data["side"] = is_test_row(data, spec)
    sides = data.groupby(["Item_Identifier", "Outlet_Identifier"])["side"].nunique()
    assert (sides == 1).all()


def test_test_fraction_is_respected(spec) -> None:
    data = days_of_data(spec, 4)
    share = is_test_row(data, spec).mean()
    assert 0.14 < share < 0.26


def test_duplicates_share_a_side_without_identity_columns(spec) -> None:
    data = spec.model_dump(mode="json")
    data["split"] = {"method": "hash", "test_fraction": 0.5}
    no_ids = parse_spec(data)
    frame = days_of_data(spec, 1)
    doubled = pd.concat([frame, frame], ignore_index=True)
    sides = is_test_row(doubled, no_ids)
    assert (sides[: len(frame)].to_numpy() == sides[len(frame) :].to_numpy()).all()


def test_window_keeps_recent_stored_days() -> None:
    stored = ["2025-01-01", "2025-01-05", "2025-01-09", "2025-01-10"]
    assert window_partitions(stored, 5) == ["2025-01-09", "2025-01-10"]
    assert window_partitions(stored, None) == stored
    assert window_partitions([], 3) == []


def test_data_version_follows_content(spec) -> None:
    data = days_of_data(spec, 1)
    assert data_version(data) == data_version(data.copy())
    changed = data.copy()
    changed.loc[0, "Item_MRP"] = changed.loc[0, "Item_MRP"] + 1
    assert data_version(changed) != data_version(data)


def test_a_forecast_window_is_read_as_its_sample_of_series(tmp_path) -> None:
    """``load_window`` filters each stored day as it reads it: only the sampled series stay."""
    from mlops_assets import names
    from mlops_assets.features.forecast import in_series_sample
    from mlops_assets.features.quality import CheckOutcome, write_verdict
    from mlops_assets.features.splits import load_window
    from mlops_assets.storage.objectstore import LocalObjectStore
    from mlops_assets.storage.tables import table_key, write_table

    spec = use_case_specs()["m5_sales"]
    half = spec.model_copy(
        update={"forecast": spec.forecast.model_copy(update={"series_sample": 0.5})}
    )
    store = LocalObjectStore(tmp_path)
    history = get_generator("m5_sales").history(dt.date(2025, 1, 1), dt.date(2025, 1, 5), seed=4)
    clean, _ = clean_frame(history, spec)
    days = sorted(clean["date"].dt.strftime("%Y-%m-%d").unique())
    for day in days:
        rows = clean[clean["date"].dt.strftime("%Y-%m-%d") == day]
        write_table(store, table_key(names.asset_path(spec.name, names.CLEAN_DATA), day), rows)
        for stage in ("raw", "clean"):
            write_verdict(store, spec, day, stage, [CheckOutcome("ok", True, "ok", {})], "run")
    frame, chosen, _ = load_window(store, half, None, lambda day: in_series_sample(day, half))
    assert chosen == days
    expected = clean[in_series_sample(clean, half)]
    assert sorted(frame["id"].unique()) == sorted(expected["id"].unique())
    assert len(frame) == len(expected) < len(clean)
