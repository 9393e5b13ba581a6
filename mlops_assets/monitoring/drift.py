"""Drift statistics: PSI for categorical and binned numeric columns, KS for numeric ones.

PSI bins numerics at the reference's deciles, so every bin holds about a tenth of the reference
and a shift of the bulk of the distribution shows, not just of its tails. Shares are floored at
a small epsilon so an empty bin does not make PSI infinite.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np
import pandas as pd

EPSILON = 1e-4
BINS = 10


@dataclass(frozen=True)
class ColumnDrift:
    """Drift of one column against the reference."""

    column: str
    kind: str
    psi: float
    ks_statistic: float | None = None
    ks_pvalue: float | None = None


def psi(reference_shares: np.ndarray, current_shares: np.ndarray) -> float:
    """Population stability index of two share vectors over the same bins."""
    ref = np.clip(reference_shares, EPSILON, None)
    cur = np.clip(current_shares, EPSILON, None)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


MISSING = "__missing__"
"""The level missing values take in categorical PSI."""


def as_numbers(values: pd.Series) -> pd.Series:
    """A column as floats, unreadable values missing (how numeric PSI reads every column)."""
    return pd.to_numeric(values, errors="coerce").astype(float)


def decile_edges(reference: pd.Series, bins: int = BINS) -> np.ndarray:
    """Inner bin edges at the reference's quantiles (deciles by default), duplicates merged.

    These edges define numeric PSI bins, whether the reference is raw rows or a stored profile
    (:mod:`mlops_assets.monitoring.profile` keeps them).
    """
    present = as_numbers(reference).dropna()
    if present.empty:
        return np.array([], dtype=float)
    return np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1]))


def binned_shares(values: pd.Series, edges: np.ndarray) -> np.ndarray:
    """Shares of all rows in each bin between ``edges`` (``len(edges) + 1`` bins), then missing.

    A value equal to an edge falls in the bin above it; the last share is the missing values'.
    """
    numbers = as_numbers(values)
    counts = np.bincount(
        np.searchsorted(edges, numbers.dropna(), side="right"), minlength=len(edges) + 1
    ).astype(float)
    counts = np.append(counts, numbers.isna().sum())
    return counts / max(len(numbers), 1)


def numeric_psi(reference: pd.Series, current: pd.Series, bins: int = BINS) -> float:
    """PSI of a numeric column over the reference's quantile bins (missing is its own bin)."""
    if as_numbers(reference).dropna().empty:
        return 0.0
    edges = decile_edges(reference, bins)
    return psi(binned_shares(reference, edges), binned_shares(current, edges))


def category_shares(values: pd.Series) -> pd.Series:
    """Share of all rows of each value (as text), missing values as the level ``__missing__``."""
    text = values.astype(object).where(values.notna(), MISSING).astype(str)
    return text.value_counts(normalize=True)


def shares_psi(reference: pd.Series, current: pd.Series) -> float:
    """PSI of two level -> share mappings over the union of their levels (absent: share 0)."""
    levels = sorted(set(reference.index) | set(current.index))
    return psi(
        reference.reindex(levels, fill_value=0).to_numpy(dtype=float),
        current.reindex(levels, fill_value=0).to_numpy(dtype=float),
    )


def categorical_psi(reference: pd.Series, current: pd.Series) -> float:
    """PSI of a categorical column over the union of seen values (missing is a value)."""
    return shares_psi(category_shares(reference), category_shares(current))


def column_drift(column: str, kind: str, reference: pd.Series, current: pd.Series) -> ColumnDrift:
    """PSI (and KS for numerics) of one column."""
    if kind in {"numeric", "integer"}:
        from scipy.stats import ks_2samp

        ref = pd.to_numeric(reference, errors="coerce").dropna().astype(float)
        cur = pd.to_numeric(current, errors="coerce").dropna().astype(float)
        ks = ks_2samp(ref, cur) if len(ref) and len(cur) else None
        return ColumnDrift(
            column,
            "numeric",
            numeric_psi(reference, current),
            float(ks.statistic) if ks is not None else None,
            float(ks.pvalue) if ks is not None else None,
        )
    return ColumnDrift(column, "categorical", categorical_psi(reference, current))


def drift_report_html(title: str, drifts: list[ColumnDrift], threshold: float) -> str:
    """A small self-contained HTML report, one row per column, drifted rows highlighted."""
    rows = []
    for d in sorted(drifts, key=lambda d: -d.psi):
        style = ' style="background:#fdd"' if d.psi > threshold else ""
        ks = f"{d.ks_statistic:.3f} (p={d.ks_pvalue:.3g})" if d.ks_statistic is not None else ""
        rows.append(
            f"<tr{style}><td>{html.escape(d.column)}</td><td>{d.kind}</td>"
            f"<td>{d.psi:.4f}</td><td>{ks}</td></tr>"
        )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif}td,th{padding:4px 10px;border-bottom:1px solid #ddd}"
        "</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>PSI above {threshold} is highlighted.</p>"
        "<table><tr><th>column</th><th>kind</th><th>PSI</th><th>KS statistic</th></tr>"
        + "".join(rows)
        + "</table></body></html>"
    )
