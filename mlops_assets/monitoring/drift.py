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


def numeric_psi(reference: pd.Series, current: pd.Series, bins: int = BINS) -> float:
    """PSI of a numeric column over the reference's quantile bins (missing is its own bin)."""
    ref = pd.to_numeric(reference, errors="coerce").astype(float)
    cur = pd.to_numeric(current, errors="coerce").astype(float)
    present = ref.dropna()
    if present.empty:
        return 0.0
    edges = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1]))

    def shares(values: pd.Series) -> np.ndarray:
        counts = np.bincount(
            np.searchsorted(edges, values.dropna(), side="right"), minlength=len(edges) + 1
        ).astype(float)
        counts = np.append(counts, values.isna().sum())
        return counts / max(len(values), 1)

    return psi(shares(ref), shares(cur))


def categorical_psi(reference: pd.Series, current: pd.Series) -> float:
    """PSI of a categorical column over the union of seen values (missing is a value)."""
    ref = reference.astype(object).where(reference.notna(), "__missing__")
    cur = current.astype(object).where(current.notna(), "__missing__")
    levels = sorted(set(ref.astype(str)) | set(cur.astype(str)))
    ref_shares = ref.astype(str).value_counts(normalize=True).reindex(levels, fill_value=0)
    cur_shares = cur.astype(str).value_counts(normalize=True).reindex(levels, fill_value=0)
    return psi(ref_shares.to_numpy(), cur_shares.to_numpy())


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
