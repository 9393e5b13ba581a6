"""Synthetic mushrooms, shaped like the UCI *secondary mushroom* file ``secondary_data.csv``.

The real file (61,069 rows, ``;``-separated) was itself simulated from 173 species of a field
guide: every species has a class (``p``, poisonous or of unknown edibility, 55%; ``e``,
edible), a set of possible values per nominal column (one to a few; or none at all: the guide
said nothing) and a range per size. The generator keeps that shape: a fixed catalogue of 173
species, drawn once from a fixed seed, and rows sampled from them. So are the real quirks:

* whole columns are missing for a species, hence mostly empty columns: ``veil-type`` 95%,
  ``spore-print-color`` 90%, ``veil-color`` 88%, ``stem-root`` 84%, ``stem-surface`` 62%,
  ``gill-spacing`` 41%, ``cap-surface`` 23%, ``gill-attachment`` 16%, ``ring-type`` 4%;
* ``f`` means *none*: three species without a stem (``stem-root``/``stem-surface``/
  ``stem-color`` ``f``, height and width 0) and ten without gills;
* about 0.25% of the rows are exact duplicates of another row (146 in the real file).

Species draw their values with a class-dependent preference, so a model learns the class from
the values themselves and not only by recognising a species.

The real file lists its specimens species by species. In the ``grouped`` layout a day's batch
holds a few species only, rows ordered by species, so a column its species lack
(``veil-type``, ``stem-root``, ``spore-print-color``) is empty for the whole day.
"""

from __future__ import annotations

import datetime as dt
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

NAME = "mushroom"

COLUMNS = [
    "class",
    "cap-diameter",
    "cap-shape",
    "cap-surface",
    "cap-color",
    "does-bruise-or-bleed",
    "gill-attachment",
    "gill-spacing",
    "gill-color",
    "stem-height",
    "stem-width",
    "stem-root",
    "stem-surface",
    "stem-color",
    "veil-type",
    "veil-color",
    "has-ring",
    "ring-type",
    "spore-print-color",
    "habitat",
    "season",
]
TARGET = "class"
NUMERIC = ["cap-diameter", "stem-height", "stem-width"]
N_SPECIES = 173
POISONOUS_SPECIES = 96
CATALOGUE_SEED = 2021
DUPLICATE_RATE = 0.0025
NONE = "f"

COLORS = {
    "n": 24218,
    "y": 8543,
    "w": 7666,
    "g": 4420,
    "e": 4035,
    "o": 3656,
    "r": 1782,
    "u": 1709,
    "p": 1703,
    "k": 1279,
    "b": 1230,
    "l": 828,
}
SURFACES = {
    "t": 8196,
    "s": 7608,
    "y": 6341,
    "h": 4974,
    "g": 4724,
    "d": 4432,
    "e": 2584,
    "k": 2303,
    "i": 2225,
    "w": 2150,
    "l": 1412,
}
# Per nominal column: real value counts (without "none"), and how many species lack the column.
VALUES: dict[str, dict[str, int]] = {
    "cap-shape": {"x": 26934, "f": 13404, "s": 7164, "b": 5694, "o": 3460, "p": 2598, "c": 1815},
    "cap-surface": SURFACES,
    "cap-color": COLORS,
    "does-bruise-or-bleed": {"f": 50479, "t": 10590},
    "gill-attachment": {"a": 12698, "d": 10247, "x": 7413, "p": 6001, "e": 5648, "s": 5648},
    "gill-spacing": {"c": 24710, "d": 7766},
    "gill-color": {**COLORS, "w": 18521, "y": 9546, "n": 9645},
    "stem-root": {"s": 3595, "b": 3177, "r": 1412, "c": 1120},
    "stem-surface": {"s": 6025, "y": 4940, "i": 4396, "t": 2644, "g": 1765, "k": 1581, "h": 1503},
    "stem-color": {**COLORS, "w": 22926, "n": 18063, "y": 7865},
    "veil-type": {"u": 1},
    "veil-color": {"w": 5474, "y": 672, "n": 525, "u": 353, "k": 353, "e": 176},
    "has-ring": {"f": 45890, "t": 15179},
    "ring-type": {"e": 2435, "z": 2118, "l": 1427, "r": 1399, "p": 1265, "g": 1240, "m": 353},
    "spore-print-color": {"k": 2118, "p": 1259, "w": 1212, "n": 1059, "g": 353, "u": 353, "r": 171},
    "habitat": {
        "d": 44209,
        "g": 7943,
        "l": 3168,
        "m": 2920,
        "h": 2001,
        "p": 360,
        "w": 353,
        "u": 115,
    },
    "season": {"a": 30177, "u": 22898, "w": 5268, "s": 2726},
}
SPECIES_WITHOUT: dict[str, int] = {
    "cap-surface": 40,
    "gill-attachment": 28,
    "gill-spacing": 71,
    "stem-root": 146,
    "stem-surface": 108,
    "veil-type": 164,
    "veil-color": 152,
    "ring-type": 7,
    "spore-print-color": 155,
}
SINGLE_VALUED = {"does-bruise-or-bleed", "has-ring", "veil-type", "stem-root"}
NO_STEM_SPECIES = 3  # stem-root, stem-surface, stem-color "f"; height and width 0
NO_GILL_SPECIES = 10  # gill-attachment, gill-spacing, gill-color "f"
CLASS_PREFERENCE = 0.3  # strength of the class-dependent preference for values
SIZE_SPREAD = 0.22  # within-species relative spread of sizes


@dataclass(frozen=True)
class Species:
    """One species: its class, the values each nominal column may take, its mean sizes."""

    poisonous: bool
    values: dict[str, tuple[str, ...]]  # empty tuple: the column is missing for the species
    sizes: dict[str, float]


def _species_values(
    rng: np.random.Generator, column: str, poisonous: bool, preference: dict[str, np.ndarray]
) -> tuple[str, ...]:
    labels = list(VALUES[column])
    weights = np.array(list(VALUES[column].values()), dtype=float)
    weights = weights / weights.sum() * np.exp((1 if poisonous else -1) * preference[column])
    count = 1 if column in SINGLE_VALUED else int(rng.choice([1, 2, 3], p=[0.55, 0.33, 0.12]))
    count = min(count, len(labels))
    picked = rng.choice(len(labels), size=count, replace=False, p=weights / weights.sum())
    return tuple(labels[i] for i in sorted(picked))


@lru_cache(maxsize=1)
def catalogue() -> tuple[Species, ...]:
    """The 173 species, drawn once from a fixed seed (the same on every call and machine)."""
    rng = np.random.default_rng(CATALOGUE_SEED)
    preference = {
        column: CLASS_PREFERENCE * rng.normal(0, 1, len(values))
        for column, values in VALUES.items()
    }
    poisonous = np.zeros(N_SPECIES, dtype=bool)
    poisonous[rng.choice(N_SPECIES, POISONOUS_SPECIES, replace=False)] = True
    without = {
        column: set(rng.choice(N_SPECIES, count, replace=False).tolist())
        for column, count in SPECIES_WITHOUT.items()
    }
    order = rng.permutation(N_SPECIES)
    no_stem = set(order[:NO_STEM_SPECIES].tolist())
    no_gill = set(order[NO_STEM_SPECIES : NO_STEM_SPECIES + NO_GILL_SPECIES].tolist())
    species = []
    for index in range(N_SPECIES):
        values = {
            column: ()
            if index in without.get(column, ())
            else _species_values(rng, column, bool(poisonous[index]), preference)
            for column in VALUES
        }
        if values["has-ring"] == ("f",) and values["ring-type"]:
            values["ring-type"] = (NONE,)
        sizes = {
            "cap-diameter": float(np.clip(rng.lognormal(np.log(5.6), 0.6), 0.8, 40)),
            "stem-height": float(np.clip(rng.lognormal(np.log(5.8), 0.5), 0.8, 25)),
            "stem-width": float(np.clip(rng.lognormal(np.log(9.0), 0.75), 0.8, 80)),
        }
        if index in no_stem:
            for column in ("stem-root", "stem-surface", "stem-color"):
                values[column] = (NONE,)
            sizes["stem-height"] = sizes["stem-width"] = 0.0
        if index in no_gill:
            for column in ("gill-attachment", "gill-spacing", "gill-color"):
                values[column] = (NONE,)
        species.append(Species(bool(poisonous[index]), values, sizes))
    return tuple(species)


class MushroomGenerator:
    """Daily batches of secondary-mushroom rows with the real columns, codes and gaps."""

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
        """One day's mushrooms: ``n_rows`` specimens of species drawn uniformly.

        Args:
            n_rows: Number of rows.
            day: The day found; each day draws other specimens.
            seed: Base seed; the same ``(n_rows, day, seed, drift)`` gives an identical frame.
            drift: ``shift_features`` may shift ``cap-diameter``, ``stem-height`` and
                ``stem-width``; ``target_scale`` multiplies the odds of a row being labelled
                poisonous (edible rows relabelled ``p`` above 1, poisonous ``e`` below: concept
                drift).
            layout: ``"grouped"`` (or a ``NonIid``): the specimens of a few species only, rows
                ordered by species (duplicates included).

        Returns:
            A frame with the real columns in their order; missing values as NaN (empty fields
            once written).
        """
        if n_rows < 0:
            raise ValueError(f"n_rows must be >= 0, got {n_rows}")
        rng = np.random.default_rng([int(seed), day_index(day, stream), zlib.crc32(NAME.encode())])
        species = catalogue()
        grouped = resolve_layout(layout)
        if grouped is None:
            picked = rng.integers(0, N_SPECIES, n_rows)
        else:
            chosen = day_groups(grouped, N_SPECIES, day, seed, NAME, stream=stream)
            picked = np.sort(chosen[rng.integers(0, len(chosen), n_rows)], kind="stable")
        data: dict[str, object] = {
            TARGET: np.array(["p" if species[i].poisonous else "e" for i in picked], dtype=object)
        }
        uniform = rng.random((n_rows, len(VALUES)))
        nominal: dict[str, np.ndarray] = {}
        for position, column in enumerate(VALUES):
            values = np.empty(n_rows, dtype=object)
            for row, index in enumerate(picked):
                options = species[index].values[column]
                values[row] = (
                    options[int(uniform[row, position] * len(options))] if options else np.nan
                )
            nominal[column] = values
        spread = rng.normal(0, SIZE_SPREAD, (n_rows, len(NUMERIC)))
        sizes = {
            column: np.array([species[i].sizes[column] for i in picked]) * (1 + spread[:, k])
            for k, column in enumerate(NUMERIC)
        }
        for column in COLUMNS[1:]:
            data[column] = sizes[column] if column in sizes else nominal[column]
        frame = pd.DataFrame(data)
        for column in NUMERIC:
            frame[column] = frame[column].clip(lower=0.0)
        relabel = rng.random(n_rows)
        duplicate = rng.random(n_rows) < DUPLICATE_RATE
        duplicate_of = rng.integers(0, max(n_rows, 1), n_rows)

        if drift is not None and drift.shift_features:
            stemless = frame["stem-width"] == 0
            frame = shift_numeric(frame, drift.shift_features, allowed=NUMERIC)
            for column in NUMERIC:
                frame[column] = frame[column].clip(lower=0.0)
            frame.loc[stemless, ["stem-height", "stem-width"]] = 0.0
        if drift is not None and drift.target_scale != 1.0:
            scale = drift.target_scale
            if scale > 1:
                flip = (frame[TARGET] == "e") & (relabel < 1 - 1 / scale)
                frame.loc[flip, TARGET] = "p"
            else:
                flip = (frame[TARGET] == "p") & (relabel < 1 - scale)
                frame.loc[flip, TARGET] = "e"
        frame[NUMERIC] = frame[NUMERIC].round(2)

        rows = np.arange(n_rows)
        rows[duplicate] = duplicate_of[duplicate]
        if grouped is not None:  # a duplicate sits with its species, as in a sorted file
            rows = rows[np.argsort(picked[rows], kind="stable")]
        return frame.iloc[rows].reset_index(drop=True)[COLUMNS]
