"""The grouped (non-iid) layout: a day's batch holds a few groups, as a file cut in file order.

Real files are sorted (by species, outlet, date): a batch cut from one is not an iid sample, and
a column missing for whole groups is then missing for a whole day. The iid default must stay
byte for byte what it was (the other generator tests pin it).
"""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from mlops_assets.generators import (
    NonIid,
    available_generators,
    day_groups,
    get_generator,
    resolve_layout,
)
from mlops_assets.generators import mushroom as mushroom_module
from mlops_assets.generators.obesity import respondent_group

FIRST = dt.date(2024, 3, 1)
DAYS = [FIRST + dt.timedelta(days=i) for i in range(20)]
SEED = 4


def group_keys(name: str, frame: pd.DataFrame) -> np.ndarray:
    """Each row's group, as the generator defines its groups."""
    if name == "bigmart_sales":
        return frame["Outlet_Identifier"].to_numpy()
    if name == "loan_approval":
        return (
            frame["self_employed"].str.strip() + "/" + frame["no_of_dependents"].astype(str)
        ).to_numpy()
    if name == "obesity":
        return respondent_group(frame)
    if name == "m5_sales":
        return frame["item_id"].to_numpy()
    raise KeyError(name)


@pytest.mark.parametrize("name", ["bigmart_sales", "loan_approval", "obesity", "m5_sales"])
def test_each_grouped_day_covers_a_few_groups_in_order(name) -> None:
    generator = get_generator(name)
    sizes = []
    for day in DAYS:
        frame = generator.generate(300, day, SEED, layout="grouped")
        keys = group_keys(name, frame)
        assert 1 <= len(set(keys)) <= 3, day
        # Ordered by group: each group's rows are one contiguous block.
        blocks = 1 + int(np.sum(keys[1:] != keys[:-1]))
        assert blocks == len(set(keys)), day
        sizes.append(len(set(keys)))
        if name != "m5_sales":
            assert len(frame) == 300
    assert max(sizes) > 1  # the number of groups varies
    iid = pd.concat([generator.generate(300, day, SEED) for day in DAYS[:3]])
    assert len(set(group_keys(name, iid))) > 3  # iid batches mix many more


def test_mushroom_days_hold_the_specimens_of_a_few_species() -> None:
    generator = get_generator("mushroom")
    species = mushroom_module.catalogue()
    layout = resolve_layout("grouped")
    for day in DAYS[:5]:
        frame = generator.generate(200, day, SEED, layout="grouped")
        chosen = day_groups(layout, mushroom_module.N_SPECIES, day, SEED, mushroom_module.NAME)
        assert 1 <= len(chosen) <= 3
        for _, row in frame.iterrows():
            assert any(_fits(row, species[s]) for s in chosen), day


def _fits(row: pd.Series, species) -> bool:
    for column, options in species.values.items():
        value = row[column]
        if not options and not pd.isna(value):
            return False
        if options and value not in options:
            return False
    return True


@pytest.mark.parametrize(
    ("name", "columns"),
    [
        ("mushroom", ["veil-type", "stem-root", "spore-print-color"]),
        ("bigmart_sales", ["Item_Weight", "Outlet_Size"]),
    ],
)
def test_columns_missing_for_whole_groups_are_missing_for_whole_days(name, columns) -> None:
    generator = get_generator(name)
    days = [generator.generate(300, day, SEED, layout="grouped") for day in DAYS]
    overall = pd.concat(days)
    for column in columns:
        assert overall[column].isna().mean() < 1.0, column
    empty = [(i, c) for i, frame in enumerate(days) for c in columns if frame[c].isna().all()]
    assert empty, "no day with a column missing throughout"
    # In iid batches the same columns are never missing for a whole day.
    for day in DAYS[:5]:
        frame = generator.generate(300, day, SEED)
        assert not any(frame[column].isna().all() for column in columns)


@pytest.mark.parametrize("name", available_generators())
def test_the_iid_layout_is_the_default(name) -> None:
    generator = get_generator(name)
    default = generator.generate(120, FIRST, SEED)
    pd.testing.assert_frame_equal(generator.generate(120, FIRST, SEED, layout="iid"), default)
    grouped = generator.generate(120, FIRST, SEED, layout=NonIid(min_groups=2, max_groups=2))
    assert list(grouped.columns) == list(default.columns)
    again = generator.generate(120, FIRST, SEED, layout=NonIid(min_groups=2, max_groups=2))
    pd.testing.assert_frame_equal(grouped, again)  # reproducible


def test_m5_grouped_rows_are_a_subset_of_the_day() -> None:
    generator = get_generator("m5_sales")
    day = dt.date(2025, 12, 5)
    full = generator.generate(0, day, SEED)
    grouped = generator.generate(0, day, SEED, layout="grouped")
    merged = grouped.merge(full, how="left", indicator=True)
    assert (merged["_merge"] == "both").all()
    history = generator.history(day, day + dt.timedelta(days=6), SEED, layout="grouped")
    assert history["date"].is_monotonic_increasing


def test_layout_errors() -> None:
    with pytest.raises(ValueError, match="unknown layout"):
        resolve_layout("sorted")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min_groups"):
        NonIid(min_groups=3, max_groups=2)
    assert resolve_layout("iid") is None and resolve_layout("grouped") == NonIid()
