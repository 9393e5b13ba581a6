"""Synthetic obesity levels, shaped like the UCI file ``ObesityDataSet_raw_and_data_sinthetic.csv``.

The real file (2111 rows, 17 columns, no missing values) is 23% survey answers and 77% rows
synthesised with SMOTE to balance the seven classes. Both kinds are kept: survey rows carry whole
numbers (``Age`` 21, ``FCVC`` 2, ``Height`` 1.62) and SMOTE rows six decimals
(``FCVC`` 2.450218), so ordinal answers like ``FCVC`` are floats in 1-3, not integers.

The label follows the body mass index, ``Weight / Height**2``, through the WHO bands (with
Overweight split at 27.5 as the real file's two overweight levels suggest), measured with a
little noise so that rows near a band edge may carry the neighbouring level. Lifestyle answers
depend on the level as in the real file (family history and high-calorie food rise with it;
physical activity falls; ``Obesity_Type_II`` is almost all men, ``Obesity_Type_III`` almost all
women and always answers ``FCVC`` 3). About 1% of rows are exact copies of survey rows, as the
real file's 24 duplicates are.

In the ``grouped`` layout a day's batch comes from a few respondent groups only (gender x age
band, 8 groups), rows ordered by group, as one school's or one clinic's survey would be.
"""

from __future__ import annotations

import datetime as dt
import zlib

import numpy as np
import pandas as pd

from mlops_assets.generators import (
    DriftConfig,
    Layout,
    day_groups,
    day_index,
    grouped_rows,
    resolve_layout,
    shift_numeric,
)

NAME = "obesity"

COLUMNS = [
    "Gender",
    "Age",
    "Height",
    "Weight",
    "family_history_with_overweight",
    "FAVC",
    "FCVC",
    "NCP",
    "CAEC",
    "SMOKE",
    "CH2O",
    "SCC",
    "FAF",
    "TUE",
    "CALC",
    "MTRANS",
    "NObeyesdad",
]
TARGET = "NObeyesdad"
LEVELS = [
    "Insufficient_Weight",
    "Normal_Weight",
    "Overweight_Level_I",
    "Overweight_Level_II",
    "Obesity_Type_I",
    "Obesity_Type_II",
    "Obesity_Type_III",
]
# Real class counts (SMOTE made them nearly balanced).
LEVEL_COUNTS = np.array([272, 287, 290, 290, 351, 297, 324], dtype=float)
# Upper BMI edge of each level (the last is open); bands for sampling add the outer limits.
BMI_EDGES = np.array([18.5, 25.0, 27.5, 30.0, 35.0, 40.0])
BMI_LOW, BMI_HIGH = 14.0, 52.0
BMI_NOISE = 0.02  # relative measurement noise of the BMI the label was read from

# Per level: share of men; mean age; share answering yes (family history, FAVC, SMOKE, SCC);
# mean answers for FCVC, NCP, CH2O, FAF, TUE.
MALE_SHARE = np.array([0.36, 0.51, 0.50, 0.64, 0.56, 0.99, 0.003])
AGE_MEAN = np.array([19.8, 21.7, 23.4, 26.9, 25.9, 28.2, 23.5])
FAMILY_YES = np.array([0.46, 0.63, 0.81, 0.93, 0.98, 0.99, 1.0])
FAVC_YES = np.array([0.81, 0.73, 0.89, 0.84, 0.94, 0.98, 1.0])
SMOKE_YES = np.array([0.01, 0.04, 0.01, 0.02, 0.02, 0.05, 0.003])
SCC_YES = np.array([0.03, 0.08, 0.10, 0.03, 0.01, 0.01, 0.003])
FCVC_MEAN = np.array([2.48, 2.33, 2.26, 2.26, 2.19, 2.39, 3.0])
NCP_MEAN = np.array([2.9, 2.74, 2.5, 2.5, 2.43, 2.74, 3.0])
CH2O_MEAN = np.array([1.87, 1.85, 2.06, 2.03, 2.11, 1.88, 2.21])
FAF_MEAN = np.array([1.25, 1.25, 1.06, 0.96, 0.99, 0.97, 0.66])
TUE_MEAN = np.array([0.84, 0.68, 0.62, 0.70, 0.68, 0.53, 0.60])
FREQUENCIES = ["no", "Sometimes", "Frequently", "Always"]
# Per level: shares of CAEC (snacking) and CALC (alcohol) answers in FREQUENCIES order.
CAEC_SHARES = np.array(
    [
        [0.02, 0.52, 0.45, 0.01],
        [0.04, 0.58, 0.29, 0.09],
        [0.07, 0.79, 0.13, 0.01],
        [0.01, 0.93, 0.04, 0.02],
        [0.02, 0.94, 0.02, 0.02],
        [0.01, 0.97, 0.01, 0.01],
        [0.0, 0.997, 0.003, 0.0],
    ]
)
CALC_SHARES = np.array(
    [
        [0.41, 0.55, 0.04, 0.0],
        [0.37, 0.55, 0.08, 0.0],
        [0.29, 0.66, 0.05, 0.0],
        [0.40, 0.58, 0.02, 0.0],
        [0.37, 0.61, 0.02, 0.0],
        [0.24, 0.75, 0.01, 0.0],
        [0.003, 0.997, 0.0, 0.0],
    ]
)
TRANSPORTS = ["Public_Transportation", "Walking", "Automobile", "Motorbike", "Bike"]
MTRANS_SHARES = np.array(
    [
        [0.80, 0.02, 0.17, 0.005, 0.005],
        [0.70, 0.11, 0.16, 0.02, 0.01],
        [0.70, 0.04, 0.25, 0.005, 0.005],
        [0.63, 0.02, 0.33, 0.01, 0.01],
        [0.72, 0.02, 0.25, 0.005, 0.005],
        [0.68, 0.005, 0.31, 0.003, 0.002],
        [0.997, 0.0, 0.003, 0.0, 0.0],
    ]
)
SURVEY_SHARE = 0.23  # rows from the survey (whole answers); the rest look SMOTE-made
DUPLICATE_RATE = 0.011
SHIFTABLE = ["Age", "Height", "Weight", "FCVC", "NCP", "CH2O", "FAF", "TUE"]
# Ranges of the real file; drifted values are clipped into them (and the spec's domains).
RANGES = {
    "Age": (14.0, 61.0),
    "Height": (1.45, 1.98),
    "Weight": (39.0, 173.0),
    "FCVC": (1.0, 3.0),
    "NCP": (1.0, 4.0),
    "CH2O": (1.0, 3.0),
    "FAF": (0.0, 3.0),
    "TUE": (0.0, 2.0),
}


AGE_BANDS = np.array([19.0, 23.0, 28.0])
"""Inner edges of the age bands of the grouped layout (under 19, 19-22, 23-27, 28 and over)."""
GROUP_POOL_SEED = 1_000_003
"""Step between the seeds of the iid pools the grouped layout filters."""


def respondent_group(frame: pd.DataFrame) -> np.ndarray:
    """Group index of each row: gender (female 0-3, male 4-7) x age band."""
    male = (frame["Gender"] == "Male").to_numpy(dtype=int)
    band = np.searchsorted(AGE_BANDS, frame["Age"].to_numpy(dtype=float), side="right")
    return male * (len(AGE_BANDS) + 1) + band


def level_of_bmi(bmi: np.ndarray) -> np.ndarray:
    """The obesity level (``LEVELS`` entry) of each body mass index."""
    return np.asarray(LEVELS, dtype=object)[np.searchsorted(BMI_EDGES, bmi, side="right")]


def _yes_no(rng: np.random.Generator, p_yes: np.ndarray) -> np.ndarray:
    return np.where(rng.random(len(p_yes)) < p_yes, "yes", "no").astype(object)


def _choose(rng: np.random.Generator, labels: list[str], shares: np.ndarray) -> np.ndarray:
    """One label per row from that row's shares (rows of ``shares`` need not be normalised)."""
    cumulative = np.cumsum(shares / shares.sum(axis=1, keepdims=True), axis=1)
    index = (rng.random((len(shares), 1)) > cumulative).sum(axis=1)
    return np.asarray(labels, dtype=object)[np.minimum(index, len(labels) - 1)]


def _answer(rng: np.random.Generator, mean: np.ndarray, sd: float, name: str) -> np.ndarray:
    low, high = RANGES[name]
    return np.clip(rng.normal(mean, sd), low, high)


class ObesityGenerator:
    """Daily batches of the UCI obesity survey with its columns, domains and SMOTE decimals."""

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
        """One day's answers: ``n_rows`` people, about balanced over the seven levels.

        Args:
            n_rows: Number of rows.
            day: The day answered; each day draws other people.
            seed: Base seed; the same ``(n_rows, day, seed, drift)`` gives an identical frame.
            drift: ``shift_features`` may shift the numeric answers in ``SHIFTABLE`` (the label
                follows a shifted ``Height`` or ``Weight``); ``target_scale`` multiplies the BMI
                the label is read from (the same body labelled heavier or lighter: concept drift).
            layout: ``"grouped"`` (or a ``NonIid``): people of a few gender x age-band groups
                only, rows ordered by group; drawn by filtering iid pools, so every answer keeps
                its distribution given the group.

        Returns:
            A frame with the real columns in their order; no missing values, as in the real file.
        """
        if n_rows < 0:
            raise ValueError(f"n_rows must be >= 0, got {n_rows}")
        grouped = resolve_layout(layout)
        if grouped is not None:
            chosen = day_groups(grouped, 2 * (len(AGE_BANDS) + 1), day, seed, NAME)
            return grouped_rows(
                lambda size, round_: self.generate(
                    size, day, seed + GROUP_POOL_SEED * (round_ + 1), drift
                ),
                respondent_group,
                chosen,
                n_rows,
            )[COLUMNS]
        rng = np.random.default_rng([int(seed), day_index(day, stream), zlib.crc32(NAME.encode())])
        level = rng.choice(len(LEVELS), size=n_rows, p=LEVEL_COUNTS / LEVEL_COUNTS.sum())
        male = rng.random(n_rows) < MALE_SHARE[level]
        age = np.clip(14 + rng.gamma(3.0, (AGE_MEAN[level] - 14) / 3.0), *RANGES["Age"])
        height = np.clip(
            np.where(male, rng.normal(1.76, 0.07, n_rows), rng.normal(1.64, 0.065, n_rows)),
            *RANGES["Height"],
        )
        low = np.concatenate([[BMI_LOW], BMI_EDGES])[level]
        high = np.concatenate([BMI_EDGES, [BMI_HIGH]])[level]
        bmi = low + (high - low) * rng.beta(1.3, 1.3, n_rows)
        weight = np.clip(bmi * height**2, *RANGES["Weight"])

        frame = pd.DataFrame(
            {
                "Gender": np.where(male, "Male", "Female").astype(object),
                "Age": age,
                "Height": height,
                "Weight": weight,
                "family_history_with_overweight": _yes_no(rng, FAMILY_YES[level]),
                "FAVC": _yes_no(rng, FAVC_YES[level]),
                "FCVC": _answer(rng, FCVC_MEAN[level], np.where(level == 6, 0.0, 0.55), "FCVC"),
                "NCP": _answer(rng, NCP_MEAN[level], np.where(level == 6, 0.0, 0.75), "NCP"),
                "CAEC": _choose(rng, FREQUENCIES, CAEC_SHARES[level]),
                "SMOKE": _yes_no(rng, SMOKE_YES[level]),
                "CH2O": _answer(rng, CH2O_MEAN[level], 0.6, "CH2O"),
                "SCC": _yes_no(rng, SCC_YES[level]),
                "FAF": _answer(rng, FAF_MEAN[level], 0.8, "FAF"),
                "TUE": _answer(rng, TUE_MEAN[level], 0.6, "TUE"),
                "CALC": _choose(rng, FREQUENCIES, CALC_SHARES[level]),
                "MTRANS": _choose(rng, TRANSPORTS, MTRANS_SHARES[level]),
            }
        )
        # The real file's one "Always" for alcohol: keep the answer possible but very rare.
        always = rng.random(n_rows) < 0.0005
        frame.loc[always, "CALC"] = "Always"
        noise = np.exp(rng.normal(0, BMI_NOISE, n_rows))
        survey = rng.random(n_rows) < SURVEY_SHARE
        duplicate_of = rng.integers(0, max(n_rows, 1), n_rows)
        duplicate = rng.random(n_rows) < DUPLICATE_RATE

        if drift is not None and drift.shift_features:
            frame = shift_numeric(frame, drift.shift_features, allowed=SHIFTABLE)
            for name, (lowest, highest) in RANGES.items():
                frame[name] = frame[name].clip(lowest, highest)

        # Survey rows hold whole answers; SMOTE rows six decimals (how the real file looks).
        whole = ["Age", "FCVC", "NCP", "CH2O", "FAF", "TUE"]
        frame.loc[survey, whole] = frame.loc[survey, whole].round(0)
        frame.loc[survey, "Height"] = frame.loc[survey, "Height"].round(2)
        frame.loc[survey, "Weight"] = frame.loc[survey, "Weight"].round(0)
        frame[list(RANGES)] = frame[list(RANGES)].round(6)

        scale = drift.target_scale if drift is not None else 1.0
        measured = frame["Weight"] / frame["Height"] ** 2 * noise * scale
        frame[TARGET] = level_of_bmi(measured.to_numpy(dtype=float))

        # Exact copies of survey rows, as the real file repeats some answers verbatim.
        sources = np.flatnonzero(survey)
        if len(sources):
            rows = np.arange(n_rows)
            copies = np.flatnonzero(duplicate & ~survey)
            rows[copies] = sources[duplicate_of[copies] % len(sources)]
            frame = frame.iloc[rows].reset_index(drop=True)
        return frame[COLUMNS]
