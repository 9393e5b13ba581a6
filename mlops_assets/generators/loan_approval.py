"""Synthetic loan applications, shaped like the Kaggle ``loan_approval_dataset.csv``.

The real file (4269 rows) was written with ``", "`` between fields, so every header name and
every text value after the first column starts with a space (`` Graduate``, `` No``,
`` Approved``); it also carries a byte-order mark and Windows line ends. The generator keeps the
value quirk in every batch (so ingestion strips spaces on every landed day) while the header
names stay canonical, because the frame is also used directly in Python; the file-level quirks
are exercised by the hand-written fixture ``loan_approval_quirky.csv``.

Amounts are in rupees on a 100,000 grid: the income is uniform in 0.2-9.9 million and the loan,
luxury and bank assets scale with it (the real correlations are 0.6-0.9). About 0.7% of the
residential asset values are ``-100000``, the real file's placeholder for an unknown value.

Approval (62% in the real file) is driven mostly by the CIBIL credit score (above ~550 almost
always approved, below almost never), then by the loan's size against income and assets and by
its term: a model can reach an ROC AUC well above 0.9.

In the ``grouped`` layout a day's batch comes from a few applicant groups only (employment x
number of dependents, 12 groups), rows ordered by group, as a branch's or a product's file
would be.
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
    resolve_layout,
    shift_numeric,
)

NAME = "loan_approval"

COLUMNS = [
    "loan_id",
    "no_of_dependents",
    "education",
    "self_employed",
    "income_annum",
    "loan_amount",
    "loan_term",
    "cibil_score",
    "residential_assets_value",
    "commercial_assets_value",
    "luxury_assets_value",
    "bank_asset_value",
    "loan_status",
]
TARGET = "loan_status"
STEP = 100_000  # every amount in the real file is a multiple of this
UNKNOWN_ASSET = -STEP  # the real file's placeholder for an unknown residential asset value
UNKNOWN_ASSET_RATE = 28 / 4269
TERMS = np.arange(2, 21, 2)  # years
IDS_PER_DAY = 100_000  # ids unique across days (from ID_EPOCH on) while a batch has fewer rows
ID_EPOCH = dt.date(2020, 1, 1)
SHIFTABLE = [
    "no_of_dependents",
    "income_annum",
    "loan_amount",
    "loan_term",
    "cibil_score",
    "residential_assets_value",
    "commercial_assets_value",
    "luxury_assets_value",
    "bank_asset_value",
]
GROUP_DEPENDENTS = 6  # groups: self-employed or not x 0-5 dependents
CIBIL_RANGE = (300, 900)
CIBIL_CUTOFF = 550
# Per amount column: (low, high) of its ratio to income, and the real file's range.
ASSET_RATIOS = {
    "loan_amount": (1.5, 4.0),
    "residential_assets_value": (0.0, 3.2),
    "commercial_assets_value": (0.0, 2.0),
    "luxury_assets_value": (1.5, 4.0),
    "bank_asset_value": (0.25, 1.5),
}
AMOUNT_RANGES = {
    "income_annum": (200_000, 9_900_000),
    "loan_amount": (300_000, 39_500_000),
    "residential_assets_value": (0, 29_100_000),
    "commercial_assets_value": (0, 19_400_000),
    "luxury_assets_value": (300_000, 39_200_000),
    "bank_asset_value": (0, 14_700_000),
}


def approval_logit(frame: pd.DataFrame) -> np.ndarray:
    """Log-odds of approval: the credit score first, then loan size, term and collateral."""
    income = frame["income_annum"].to_numpy(dtype=float)
    loan = frame["loan_amount"].to_numpy(dtype=float)
    assets = frame[
        [
            "residential_assets_value",
            "commercial_assets_value",
            "luxury_assets_value",
            "bank_asset_value",
        ]
    ].to_numpy(dtype=float)
    cibil = frame["cibil_score"].to_numpy(dtype=float)
    term = frame["loan_term"].to_numpy(dtype=float)
    burden = loan / np.maximum(income, STEP) - 2.75
    cover = np.clip(assets.clip(min=0).sum(axis=1) / np.maximum(loan, STEP), 0, 6) - 2.5
    # A sharp step at the score cut-off (~550), softened for short loans below it.
    score = 4.5 * np.tanh((cibil - CIBIL_CUTOFF) / 30)
    short_exception = np.where((cibil < CIBIL_CUTOFF) & (term <= 4), 2.5, 0.0)
    return score + short_exception - 0.7 * burden + 0.3 * cover + 0.6


def _on_grid(values: np.ndarray | pd.Series, low: float, high: float) -> np.ndarray:
    stepped = np.round(np.asarray(values, dtype=float) / STEP) * STEP
    return np.clip(stepped, low, high).astype(np.int64)


class LoanApprovalGenerator:
    """Daily batches of loan applications with the real columns, grid and spacing quirks."""

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
        """One day's applications and their decisions.

        Args:
            n_rows: Number of rows (ids stay unique across days below 100,000 rows a day).
            day: The day applied; each day draws other applicants and other loan ids.
            seed: Base seed; the same ``(n_rows, day, seed, drift)`` gives an identical frame.
            drift: ``shift_features`` may shift the numeric columns in ``SHIFTABLE`` (decisions
                follow the shifted values); ``target_scale`` multiplies the odds of approval
                (the same applicant approved more or less often: concept drift).
            layout: ``"grouped"`` (or a ``NonIid``): applicants of a few (self-employed,
                dependents) groups only, rows ordered by group.

        Returns:
            A frame with the real columns in their order; text values with the real file's
            leading space.
        """
        if n_rows < 0:
            raise ValueError(f"n_rows must be >= 0, got {n_rows}")
        rng = np.random.default_rng([int(seed), day_index(day, stream), zlib.crc32(NAME.encode())])
        ordinal = stream if stream is not None else max(0, (day - ID_EPOCH).days)
        first_id = ordinal * IDS_PER_DAY + 1
        income = _on_grid(rng.uniform(1.5, 99.5, n_rows) * STEP, *AMOUNT_RANGES["income_annum"])
        frame = pd.DataFrame(
            {
                "loan_id": np.arange(first_id, first_id + n_rows, dtype=np.int64),
                "no_of_dependents": rng.integers(0, 6, n_rows),
                "education": np.where(rng.random(n_rows) < 0.502, "Graduate", "Not Graduate"),
                "self_employed": np.where(rng.random(n_rows) < 0.504, "Yes", "No"),
                "income_annum": income,
                "loan_term": rng.choice(TERMS, n_rows),
                "cibil_score": rng.integers(CIBIL_RANGE[0], CIBIL_RANGE[1] + 1, n_rows),
            }
        )
        for name, (low, high) in ASSET_RATIOS.items():
            frame[name] = _on_grid(income * rng.uniform(low, high, n_rows), *AMOUNT_RANGES[name])
        unknown = rng.random(n_rows) < UNKNOWN_ASSET_RATE
        draw = rng.random(n_rows)
        grouped = resolve_layout(layout)
        group = None
        if grouped is not None:
            chosen = day_groups(grouped, 2 * GROUP_DEPENDENTS, day, seed, NAME, stream=stream)
            rows_rng = np.random.default_rng(
                [int(seed), day_index(day, stream), zlib.crc32(b"rows")]
            )
            group = chosen[rows_rng.integers(0, len(chosen), n_rows)]
            frame["self_employed"] = np.where(group // GROUP_DEPENDENTS == 1, "Yes", "No")
            frame["no_of_dependents"] = group % GROUP_DEPENDENTS

        if drift is not None and drift.shift_features:
            frame = shift_numeric(frame, drift.shift_features, allowed=SHIFTABLE)
            for name, (low, high) in AMOUNT_RANGES.items():
                frame[name] = _on_grid(frame[name], low, high)
            frame["cibil_score"] = frame["cibil_score"].round().clip(*CIBIL_RANGE).astype(int)
            frame["no_of_dependents"] = frame["no_of_dependents"].round().clip(0, 5).astype(int)
            term = frame["loan_term"].to_numpy(dtype=float)
            frame["loan_term"] = np.clip(np.round(term / 2) * 2, 2, 20).astype(int)

        logit = approval_logit(frame)
        if drift is not None:
            logit = logit + np.log(drift.target_scale)
        approved = draw < 1 / (1 + np.exp(-logit))
        frame[TARGET] = np.where(approved, "Approved", "Rejected")
        frame.loc[unknown, "residential_assets_value"] = UNKNOWN_ASSET

        # The real file's ", " separator: every text value starts with a space.
        for name in ("education", "self_employed", TARGET):
            frame[name] = " " + frame[name].astype(object)
        if group is not None:
            frame = frame.iloc[np.argsort(group, kind="stable")].reset_index(drop=True)
        return frame[COLUMNS]
