"""Synthetic M5 sales in the long format: one row per series (item x store) and event date.

Columns, value domains and quirks of the M5 evaluation data joined with its calendar and sell
prices (``id``, ``item_id``, ``dept_id``, ``cat_id``, ``store_id``, ``state_id``, ``d``, ``date``,
``sales``, ``wm_yr_wk``, the two event name/type pairs, ``snap_CA``/``snap_TX``/``snap_WI``,
``sell_price``), for 3 stores x 10 items so tests and the demo stay fast:

- intermittent sales: slow items sell nothing on most days (Poisson with a small rate);
- weekly seasonality (weekends sell more), event effects (Christmas: stores closed, zero sales;
  the Super Bowl lifts food), SNAP days lifting FOODS in the store's state;
- prices set per Walmart week (``wm_yr_wk``), with occasional promotion weeks that lift sales;
- a real file's missing rows: a share of the zero-sales rows is simply absent.

Each day is drawn from its own seed, so a day's rows are the same whether generated alone
(:meth:`M5SalesGenerator.generate`) or inside a history file (:meth:`M5SalesGenerator.history`).

In the ``grouped`` layout a day's rows are those of a few items only (in every store), a subset
of the iid day's rows ordered by item and store, as a file cut from an item-sorted extract.
Downstream, a series without a row on a day reads as a day without sales.
"""

from __future__ import annotations

import datetime as dt

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

M5_START = dt.date(2011, 1, 29)
"""``d_1`` of the M5 data (a Saturday, the first day of Walmart week 11101)."""

STORES = ["CA_1", "TX_1", "WI_1"]
ITEMS = [
    # item_id, base daily rate, base price
    ("FOODS_3_090", 6.0, 1.25),
    ("FOODS_3_586", 4.0, 1.68),
    ("FOODS_3_252", 2.5, 1.48),
    ("FOODS_2_360", 1.2, 2.98),
    ("FOODS_1_218", 0.4, 2.50),
    ("HOBBIES_1_008", 1.0, 0.46),
    ("HOBBIES_2_119", 0.15, 4.97),
    ("HOUSEHOLD_1_334", 0.8, 3.97),
    ("HOUSEHOLD_1_459", 0.3, 7.94),
    ("HOUSEHOLD_2_040", 0.1, 12.47),
]
COLUMNS = [
    "id",
    "item_id",
    "dept_id",
    "cat_id",
    "store_id",
    "state_id",
    "d",
    "date",
    "sales",
    "wm_yr_wk",
    "event_name_1",
    "event_type_1",
    "event_name_2",
    "event_type_2",
    "snap_CA",
    "snap_TX",
    "snap_WI",
    "sell_price",
]
# (month, day) -> (name, type): fixed-date stand-ins for the M5 calendar's events.
EVENTS = {
    (1, 1): ("NewYear", "National"),
    (2, 7): ("SuperBowl", "Sporting"),
    (2, 14): ("ValentinesDay", "Cultural"),
    (2, 17): ("PresidentsDay", "National"),
    (3, 17): ("StPatricksDay", "Cultural"),
    (4, 20): ("Easter", "Cultural"),
    (5, 11): ("Mother's day", "Cultural"),
    (5, 26): ("MemorialDay", "National"),
    (7, 4): ("IndependenceDay", "National"),
    (9, 1): ("LaborDay", "National"),
    (10, 31): ("Halloween", "Cultural"),
    (11, 27): ("Thanksgiving", "National"),
    (12, 10): ("Chanukah End", "Religious"),
    (12, 25): ("Christmas", "National"),
}
SECOND_EVENTS = {(4, 20): ("OrthodoxEaster", "Religious")}
SNAP_DAYS = {
    "CA": set(range(1, 11)),
    "TX": {1, 3, 5, 6, 7, 9, 11, 12, 15},
    "WI": {2, 3, 5, 6, 8, 9, 11, 12, 14, 15},
}
WEEKDAY_EFFECT = [0.9, 0.85, 0.85, 0.9, 1.05, 1.3, 1.35]  # Monday .. Sunday
MISSING_ZERO_SHARE = 0.5
"""Share of zero-sales rows left out of a file, as real extracts do."""


def walmart_week(day: dt.date) -> int:
    """``wm_yr_wk``: 1, the fiscal year's last two digits, the week (weeks start on Saturday)."""
    saturday = day - dt.timedelta(days=(day.weekday() - 5) % 7)

    def fiscal_start(year: int) -> dt.date:
        end_of_january = dt.date(year, 1, 31)
        return end_of_january - dt.timedelta(days=(end_of_january.weekday() - 5) % 7)

    year = saturday.year if saturday >= fiscal_start(saturday.year) else saturday.year - 1
    week = (saturday - fiscal_start(year)).days // 7 + 1
    return 10000 + (year % 100) * 100 + week


def calendar_row(day: dt.date) -> dict[str, object]:
    """The calendar columns of a day: M5 day index, week, events and SNAP flags."""
    event = EVENTS.get((day.month, day.day), (None, None))
    second = SECOND_EVENTS.get((day.month, day.day), (None, None))
    return {
        "d": f"d_{(day - M5_START).days + 1}",
        "date": day.isoformat(),
        "wm_yr_wk": walmart_week(day),
        "event_name_1": event[0],
        "event_type_1": event[1],
        "event_name_2": second[0],
        "event_type_2": second[1],
        **{f"snap_{state}": int(day.day in days) for state, days in SNAP_DAYS.items()},
    }


def _series() -> list[dict[str, object]]:
    rows = []
    for store in STORES:
        for index, (item, rate, price) in enumerate(ITEMS):
            dept = item.rsplit("_", 1)[0]
            rows.append(
                {
                    "id": f"{item}_{store}_evaluation",
                    "item_id": item,
                    "dept_id": dept,
                    "cat_id": dept.split("_")[0],
                    "store_id": store,
                    "state_id": store.split("_")[0],
                    "_rate": rate * (1.0 + 0.15 * STORES.index(store)),
                    "_price": price,
                    "_index": index + 10 * STORES.index(store),
                }
            )
    return rows


def week_price(seed: int, week: int, series_index: int, base: float) -> tuple[float, bool]:
    """The sell price of a series in a Walmart week, and whether the week is a promotion."""
    rng = np.random.default_rng([seed, week, series_index, 7])
    promo = bool(rng.random() < 0.12)
    drift = 1.0 + 0.01 * ((week % 100) // 13)  # a small rise each quarter
    price = base * drift * (0.8 if promo else 1.0)
    return round(price, 2), promo


class M5SalesGenerator:
    """Daily M5 long-format rows for 3 stores x 10 items."""

    name = "m5_sales"

    def generate(
        self,
        n_rows: int,
        day: dt.date,
        seed: int,
        drift: DriftConfig | None = None,
        layout: Layout = "iid",
        stream: int | None = None,
    ) -> pd.DataFrame:
        """The rows of one event date, one per series that has a row that day.

        ``n_rows`` is ignored: a day has at most one row per series (30 series); zero-sales
        rows are partly missing, as in real extracts. ``layout="grouped"`` (or a ``NonIid``)
        keeps the rows of a few items only, ordered by item and store.
        """
        drift = drift or DriftConfig()
        rng = np.random.default_rng([seed, day_index(day, stream)])
        calendar = calendar_row(day)
        event = calendar["event_name_1"]
        rows = []
        for series in _series():
            week = int(calendar["wm_yr_wk"])  # type: ignore[arg-type]
            price, promo = week_price(seed, week, int(series["_index"]), float(series["_price"]))
            rate = float(series["_rate"]) * WEEKDAY_EFFECT[day.weekday()]
            if promo:
                rate *= 1.5
            if series["cat_id"] == "FOODS" and calendar[f"snap_{series['state_id']}"]:
                rate *= 1.3
            if event == "SuperBowl" and series["cat_id"] == "FOODS":
                rate *= 1.6
            if event == "Christmas":
                rate = 0.0  # stores are closed
            sales = int(rng.poisson(rate * drift.target_scale))
            if sales == 0 and rng.random() < MISSING_ZERO_SHARE:
                continue
            rows.append(
                {
                    **{k: v for k, v in series.items() if not k.startswith("_")},
                    **calendar,
                    "sales": sales,
                    "sell_price": price,
                }
            )
        frame = pd.DataFrame(rows, columns=COLUMNS)
        if drift.shift_features:
            frame = shift_numeric(frame, drift.shift_features, allowed=["sell_price"])
        grouped = resolve_layout(layout)
        if grouped is not None:
            items = [item for item, _, _ in ITEMS]
            chosen = [items[i] for i in day_groups(grouped, len(items), day, seed, self.name)]
            frame = frame[frame["item_id"].isin(chosen)]
            order = frame["item_id"].map(items.index) * len(STORES) + frame["store_id"].map(
                STORES.index
            )
            frame = frame.iloc[np.argsort(order.to_numpy(), kind="stable")]
            frame = frame.reset_index(drop=True)
        return frame

    def history(
        self,
        first: dt.date,
        last: dt.date,
        seed: int,
        drift: DriftConfig | None = None,
        layout: Layout = "iid",
    ) -> pd.DataFrame:
        """Every day from ``first`` to ``last`` in one frame: a history file, oldest first."""
        days = [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]
        frames = [self.generate(0, day, seed, drift, layout) for day in days]
        return pd.concat(frames, ignore_index=True)
