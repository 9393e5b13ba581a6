"""Drift statistics: no drift reads as zero, a shift reads as large."""

import numpy as np
import pandas as pd
import pytest

from mlops_assets.monitoring.drift import (
    categorical_psi,
    column_drift,
    drift_report_html,
    numeric_psi,
    psi,
)

RNG = np.random.default_rng(0)


def test_psi_of_identical_shares_is_zero() -> None:
    shares = np.array([0.2, 0.3, 0.5])
    assert psi(shares, shares) == pytest.approx(0.0)


def test_numeric_psi_grows_with_the_shift() -> None:
    reference = pd.Series(RNG.normal(100, 10, 5000))
    same = pd.Series(RNG.normal(100, 10, 2000))
    small = pd.Series(RNG.normal(103, 10, 2000))
    large = pd.Series(RNG.normal(115, 10, 2000))
    assert numeric_psi(reference, same) < 0.02
    assert (
        numeric_psi(reference, same) < numeric_psi(reference, small) < numeric_psi(reference, large)
    )
    assert numeric_psi(reference, large) > 0.5


def test_missing_values_are_a_bin_of_their_own() -> None:
    reference = pd.Series(RNG.normal(0, 1, 1000))
    holes = reference.copy()
    holes[: len(holes) // 2] = np.nan
    assert numeric_psi(reference, holes) > 0.5


def test_categorical_psi_sees_new_and_vanished_levels() -> None:
    reference = pd.Series(["a"] * 500 + ["b"] * 500)
    assert categorical_psi(reference, reference.sample(frac=1, random_state=1)) == pytest.approx(0)
    assert categorical_psi(reference, pd.Series(["a"] * 900 + ["c"] * 100)) > 0.5


def test_column_drift_reports_ks_for_numerics_only() -> None:
    numeric = column_drift(
        "x", "numeric", pd.Series(RNG.normal(0, 1, 500)), pd.Series(RNG.normal(2, 1, 500))
    )
    assert numeric.ks_statistic > 0.5 and numeric.ks_pvalue < 1e-6
    categorical = column_drift("c", "categorical", pd.Series(["a", "b"]), pd.Series(["a", "a"]))
    assert categorical.ks_statistic is None


def test_report_highlights_drifted_columns() -> None:
    drifts = [
        column_drift(
            "x", "numeric", pd.Series(RNG.normal(0, 1, 500)), pd.Series(RNG.normal(3, 1, 500))
        ),
        column_drift(
            "y", "numeric", pd.Series(RNG.normal(0, 1, 500)), pd.Series(RNG.normal(0, 1, 500))
        ),
    ]
    report = drift_report_html("uc drift 2025-01-01", drifts, threshold=0.2)
    assert report.count('style="background:#fdd"') == 1
    assert report.index(">x<") < report.index(">y<")  # worst first
