"""Synthetic BigMart item-outlet sales, shaped like the real ``Train.csv`` with its quirks.

The catalogue is fixed: 1559 items (``FD``/``DR``/``NC`` ids) whose weight, type, fat content,
base price and base visibility are derived from the item id alone, and the 10 real outlets with
their real attributes. A day's batch samples (item, outlet) pairs and their sales that day.

Quirks of the real file are kept: dirty fat spellings (``LF``, ``low fat``, ``reg``), non-food
items labelled ``Low Fat``, the weight missing for every row of OUT019 and OUT027 (~17%), the size
missing for OUT010, OUT017 and OUT045 (~28%), and ~6% zero visibilities.

Sales are ``MRP x units``, the units depending on the outlet (grocery stores sell a fraction of a
supermarket, Type3 the most), the item type and the visibility, times lognormal noise: a model
can explain about three quarters of the variance.

In the ``grouped`` layout a day's batch comes from a few outlets only (big ones likelier), rows
ordered by outlet: a day of OUT019 and OUT027 has no ``Item_Weight`` at all, a day of OUT010,
OUT017 and OUT045 no ``Outlet_Size``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from mlops_assets.generators import (
    DriftConfig,
    Layout,
    day_groups,
    day_index,
    resolve_layout,
    shift_numeric,
)

NAME = "bigmart_sales"

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
TARGET = "Item_Outlet_Sales"
SHIFTABLE = ["Item_Weight", "Item_Visibility", "Item_MRP"]
N_ITEMS = 1559


@dataclass(frozen=True)
class Outlet:
    """A real outlet: fixed attributes, its share of rows and its sales multiplier."""

    identifier: str
    year: int
    size: str | None
    tier: str
    type: str
    share: float
    sales_factor: float
    visibility_factor: float


# Shares follow the real row counts per outlet (grocery stores have ~60% of the rows).
OUTLETS: tuple[Outlet, ...] = (
    Outlet("OUT010", 1998, None, "Tier 3", "Grocery Store", 555, 0.14, 1.55),
    Outlet("OUT013", 1987, "High", "Tier 3", "Supermarket Type1", 932, 1.00, 1.0),
    Outlet("OUT017", 2007, None, "Tier 2", "Supermarket Type1", 926, 1.04, 1.0),
    Outlet("OUT018", 2009, "Medium", "Tier 3", "Supermarket Type2", 928, 0.88, 1.0),
    Outlet("OUT019", 1985, "Small", "Tier 1", "Grocery Store", 528, 0.16, 1.55),
    Outlet("OUT027", 1985, "Medium", "Tier 3", "Supermarket Type3", 935, 1.70, 0.95),
    Outlet("OUT035", 2004, "Small", "Tier 2", "Supermarket Type1", 930, 1.06, 1.0),
    Outlet("OUT045", 2002, None, "Tier 2", "Supermarket Type1", 929, 0.97, 1.0),
    Outlet("OUT046", 1997, "Small", "Tier 1", "Supermarket Type1", 930, 0.98, 1.0),
    Outlet("OUT049", 1999, "Medium", "Tier 1", "Supermarket Type1", 930, 1.02, 1.0),
)
# The real file has no weights for these outlets' rows.
OUTLETS_WITHOUT_WEIGHT = frozenset({"OUT019", "OUT027"})

# Item types per id prefix, weighted by their real row counts.
ITEM_TYPES_BY_PREFIX: dict[str, dict[str, float]] = {
    "FD": {
        "Fruits and Vegetables": 1232,
        "Snack Foods": 1200,
        "Frozen Foods": 856,
        "Canned": 649,
        "Baking Goods": 648,
        "Dairy": 537,
        "Meat": 425,
        "Breads": 251,
        "Starchy Foods": 148,
        "Breakfast": 110,
        "Seafood": 64,
    },
    "DR": {"Soft Drinks": 445, "Hard Drinks": 214, "Dairy": 145},
    "NC": {"Household": 910, "Health and Hygiene": 520, "Others": 169},
}
# Share of items per prefix (real: 72% food, 9% drinks, 19% non-consumables).
PREFIX_SHARES = {"FD": 0.719, "DR": 0.094, "NC": 0.187}

# Units sold relative to the average item type.
ITEM_TYPE_EFFECT: dict[str, float] = {
    "Baking Goods": 0.85,
    "Breads": 1.05,
    "Breakfast": 1.15,
    "Canned": 1.0,
    "Dairy": 1.1,
    "Frozen Foods": 0.95,
    "Fruits and Vegetables": 1.08,
    "Hard Drinks": 0.9,
    "Health and Hygiene": 0.88,
    "Household": 1.0,
    "Meat": 0.97,
    "Others": 0.8,
    "Seafood": 1.25,
    "Snack Foods": 1.03,
    "Soft Drinks": 0.92,
    "Starchy Foods": 1.2,
}

# Real MRP has four price bands with gaps around 69, 136 and 203.
MRP_BANDS = ((31.29, 68.9), (70.2, 135.9), (137.1, 202.9), (204.4, 266.89))
MRP_BAND_WEIGHTS = (0.19, 0.32, 0.31, 0.18)

# Dirty spellings per row, roughly at the real frequencies (~5% of rows combined).
LOW_FAT_SPELLINGS = (("Low Fat", 0.945), ("LF", 0.04), ("low fat", 0.015))
REGULAR_SPELLINGS = (("Regular", 0.965), ("reg", 0.035))

UNITS_PER_SALE = 16.5  # units a Type1 supermarket sells of an average item
NOISE_SIGMA = 0.27
ZERO_VISIBILITY_RATE = 0.062
MIN_SALES = 33.29
VISIBILITY_RANGE = (0.0035, 0.328)
CATALOGUE_SEED = 2013


@dataclass(frozen=True)
class Catalogue:
    """The fixed items: one entry per item, aligned arrays."""

    ids: np.ndarray
    weight: np.ndarray
    item_type: np.ndarray
    regular: np.ndarray
    mrp: np.ndarray
    visibility: np.ndarray


def _item_rng(item_id: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{NAME}:{item_id}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def item_attributes(item_id: str) -> dict[str, object]:
    """The fixed attributes of one item, derived from its id alone.

    Args:
        item_id: An id like ``FDA15``: prefix ``FD``/``DR``/``NC``, a letter and two digits.

    Returns:
        ``weight``, ``item_type``, ``regular`` (fat content), ``mrp`` (base price) and
        ``visibility`` (base share of shelf space).
    """
    rng = _item_rng(item_id)
    prefix = item_id[:2]
    types = ITEM_TYPES_BY_PREFIX[prefix]
    names = list(types)
    weights = np.array(list(types.values()), dtype=float)
    item_type = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    weight = round(float(rng.uniform(4.555, 21.35)), 3)
    regular = bool(rng.random() < 0.43) and prefix != "NC"
    band = MRP_BANDS[int(rng.choice(len(MRP_BANDS), p=MRP_BAND_WEIGHTS))]
    mrp = float(rng.uniform(*band))
    visibility = float(np.clip(rng.gamma(2.0, 0.029), 0.005, 0.24))
    return {
        "weight": weight,
        "item_type": item_type,
        "regular": regular,
        "mrp": mrp,
        "visibility": visibility,
    }


@lru_cache(maxsize=1)
def catalogue() -> Catalogue:
    """The 1559 items, their ids drawn once from a fixed seed, their attributes from their ids."""
    rng = np.random.default_rng(CATALOGUE_SEED)
    ids: list[str] = []
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    for prefix, share in PREFIX_SHARES.items():
        count = round(N_ITEMS * share)
        if prefix == "NC":
            count = N_ITEMS - len(ids)
        codes = rng.choice(26 * 60, size=count, replace=False)
        ids.extend(f"{prefix}{letters[c // 60]}{c % 60 + 1:02d}" for c in codes)
    ids.sort()
    attributes = [item_attributes(i) for i in ids]
    return Catalogue(
        ids=np.array(ids, dtype=object),
        weight=np.array([a["weight"] for a in attributes], dtype=float),
        item_type=np.array([a["item_type"] for a in attributes], dtype=object),
        regular=np.array([a["regular"] for a in attributes], dtype=bool),
        mrp=np.array([a["mrp"] for a in attributes], dtype=float),
        visibility=np.array([a["visibility"] for a in attributes], dtype=float),
    )


def _pick(rng: np.random.Generator, choices: tuple[tuple[str, float], ...], n: int) -> np.ndarray:
    labels = np.array([c[0] for c in choices], dtype=object)
    probs = np.array([c[1] for c in choices], dtype=float)
    return labels[rng.choice(len(labels), size=n, p=probs / probs.sum())]


class BigMartSalesGenerator:
    """Daily batches of BigMart item-outlet sales with the real file's columns and quirks."""

    name = NAME
    columns = COLUMNS

    def generate(
        self,
        n_rows: int,
        day: dt.date,
        seed: int,
        drift: DriftConfig | None = None,
        layout: Layout = "iid",
        stream: int | None = None,
    ) -> pd.DataFrame:
        """One day's sales: ``n_rows`` sampled (item, outlet) pairs.

        Args:
            n_rows: Number of rows; an item appears at most once per outlet while an outlet
                gets at most 1559 rows.
            day: The day sold; each day draws other pairs, prices, visibilities and noise.
            seed: Base seed; the same ``(n_rows, day, seed, drift)`` gives an identical frame.
            drift: ``shift_features`` may shift ``Item_Weight``, ``Item_Visibility`` and
                ``Item_MRP`` (sales follow the shifted values); ``target_scale`` multiplies sales.
            layout: ``"grouped"`` (or a ``NonIid``): the rows of a few outlets only, ordered by
                outlet.

        Returns:
            A frame with the real BigMart columns in their order, missing values as NaN.
        """
        if n_rows < 0:
            raise ValueError(f"n_rows must be >= 0, got {n_rows}")
        rng = np.random.default_rng([int(seed), day_index(day, stream), zlib.crc32(NAME.encode())])
        items = catalogue()
        n_items, n_outlets = len(items.ids), len(OUTLETS)

        # Rows per outlet by the outlets' real shares, then distinct items within an outlet.
        share = np.array([o.share for o in OUTLETS], dtype=float)
        grouped = resolve_layout(layout)
        if grouped is not None:
            chosen = day_groups(grouped, n_outlets, day, seed, NAME, weights=share, stream=stream)
            share = np.where(np.isin(np.arange(n_outlets), chosen), share, 0.0)
        counts = rng.multinomial(n_rows, share / share.sum())
        outlet_idx = np.repeat(np.arange(n_outlets), counts)
        item_idx = np.concatenate(
            [rng.choice(n_items, size=c, replace=bool(c > n_items)) for c in counts]
        ).astype(np.int64)
        if grouped is None:  # grouped rows stay in outlet order
            order = rng.permutation(n_rows)
            item_idx, outlet_idx = item_idx[order], outlet_idx[order]
        outlet = [OUTLETS[i] for i in outlet_idx]
        outlet_ids = np.array([o.identifier for o in outlet], dtype=object)

        item_type = items.item_type[item_idx]
        mrp = items.mrp[item_idx] * (1 + rng.normal(0, 0.008, n_rows))
        vis_factor = np.array([o.visibility_factor for o in outlet], dtype=float)
        visibility = np.clip(
            items.visibility[item_idx] * vis_factor * rng.lognormal(0, 0.15, n_rows),
            *VISIBILITY_RANGE,
        )
        frame = pd.DataFrame(
            {
                "Item_Identifier": items.ids[item_idx],
                "Item_Weight": items.weight[item_idx],
                "Item_Fat_Content": np.where(
                    items.regular[item_idx],
                    _pick(rng, REGULAR_SPELLINGS, n_rows),
                    _pick(rng, LOW_FAT_SPELLINGS, n_rows),
                ),
                "Item_Visibility": visibility,
                "Item_Type": item_type,
                "Item_MRP": mrp,
                "Outlet_Identifier": outlet_ids,
                "Outlet_Establishment_Year": np.array([o.year for o in outlet], dtype=np.int64),
                "Outlet_Size": np.array([o.size for o in outlet], dtype=object),
                "Outlet_Location_Type": np.array([o.tier for o in outlet], dtype=object),
                "Outlet_Type": np.array([o.type for o in outlet], dtype=object),
            }
        )
        noise = rng.lognormal(0, NOISE_SIGMA, n_rows)
        zero_visibility = rng.random(n_rows) < ZERO_VISIBILITY_RATE

        if drift is not None and drift.shift_features:
            frame = shift_numeric(frame, drift.shift_features, allowed=SHIFTABLE)
            frame["Item_Weight"] = frame["Item_Weight"].clip(0.5, 50)
            frame["Item_Visibility"] = frame["Item_Visibility"].clip(VISIBILITY_RANGE[0], 1.0)
            frame["Item_MRP"] = frame["Item_MRP"].clip(1.0, 1000.0)

        sales_factor = np.array([o.sales_factor for o in outlet], dtype=float)
        type_effect = np.array([ITEM_TYPE_EFFECT[t] for t in item_type], dtype=float)
        # More shelf space sells more, with diminishing returns.
        vis = frame["Item_Visibility"].to_numpy(dtype=float)
        vis_effect = 0.75 + 0.5 * np.sqrt(np.clip(vis / 0.08, 0, 4)) / 2
        units = UNITS_PER_SALE * sales_factor * type_effect * vis_effect * noise
        scale = drift.target_scale if drift is not None else 1.0
        sales = frame["Item_MRP"].to_numpy(dtype=float) * units * scale
        frame[TARGET] = np.round(np.maximum(sales, MIN_SALES), 4)

        # Recording quirks, applied after sales so that they carry no signal of their own.
        frame.loc[zero_visibility, "Item_Visibility"] = 0.0
        frame.loc[np.isin(outlet_ids, list(OUTLETS_WITHOUT_WEIGHT)), "Item_Weight"] = np.nan
        frame["Item_Visibility"] = frame["Item_Visibility"].round(9)
        frame["Item_MRP"] = frame["Item_MRP"].round(4)
        frame["Item_Weight"] = frame["Item_Weight"].round(3)
        return frame[COLUMNS]
