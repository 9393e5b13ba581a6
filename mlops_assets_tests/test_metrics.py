"""RMSSE: the model's error scaled, per series, by the seasonal-naive forecast's error."""

import numpy as np
import pytest

from mlops_assets.metrics import direction, rmsse


def test_rmsse_hand_computed_per_series_then_averaged() -> None:
    # Series a: model errors 1, -1 -> MSE 1; naive errors 2, 2 -> MSE 4; ratio sqrt(1/4) = 0.5.
    # Series b: model errors 0, 3 -> MSE 4.5; naive errors 3, 0 -> MSE 4.5; ratio 1.
    y_true = np.array([5.0, 3.0, 0.0, 3.0])
    y_pred = np.array([4.0, 4.0, 0.0, 0.0])
    y_naive = np.array([3.0, 1.0, 3.0, 3.0])
    groups = np.array(["a", "a", "b", "b"])
    assert rmsse(y_true, y_pred, y_naive, groups) == pytest.approx(0.75)
    # One series: sqrt((1 + 1 + 0 + 9) / (4 + 4 + 9 + 0)) over all rows.
    assert rmsse(y_true, y_pred, y_naive) == pytest.approx(np.sqrt(11 / 17))


def test_rmsse_of_the_naive_forecast_itself_is_one() -> None:
    y_true = np.array([1.0, 4.0, 2.0, 0.0])
    naive = np.array([2.0, 2.0, 2.0, 1.0])
    assert rmsse(y_true, naive, naive) == pytest.approx(1.0)


def test_rmsse_skips_rows_without_naive_and_perfect_naive_series() -> None:
    y_true = np.array([2.0, 2.0, 1.0, 5.0])
    y_pred = np.array([2.0, 2.0, 3.0, 5.0])
    y_naive = np.array([2.0, 2.0, np.nan, 4.0])  # series x: naive perfect -> left out
    groups = np.array(["x", "x", "y", "y"])
    assert rmsse(y_true, y_pred, y_naive, groups) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="no series"):
        rmsse(y_true[:2], y_pred[:2], y_naive[:2], groups[:2])


def test_rmsse_is_minimised() -> None:
    assert direction("rmsse") == "minimize"
