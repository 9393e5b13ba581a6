"""Derived features declared in the spec: computed once, by the one feature path.

Row-level derivations (a text prefix, a difference, a ratio or product, a date part) are added
by :func:`with_derived` wherever model input is built (:func:`~mlops_assets.features.pipeline.
model_input`: training, the gate, monitoring, the service) and wherever drift is measured, so
every stage sees the same values. Group statistics (a column's mean per group) are fitted on
training rows inside the model pipeline, as the group imputers are
(:func:`~mlops_assets.features.pipeline.transformer_classes`, ``GroupStat``), so test rows never
leak into them and a served record gets its group's value.

No ``eval``: each kind is a small typed function of its columns.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from mlops_assets.features.forecast import derived_features as lag_features
from mlops_assets.specs.model import (
    ColumnSpec,
    DatePartFeature,
    DifferenceFeature,
    GroupStatFeature,
    Operand,
    PrefixFeature,
    ProductFeature,
    RatioFeature,
    UseCaseSpec,
)


def derived_columns(spec: UseCaseSpec) -> list[ColumnSpec]:
    """The derived features as model features: a prefix is categorical, the rest numeric."""
    return [
        ColumnSpec(
            name=feature.name,
            type="categorical" if isinstance(feature, PrefixFeature) else "numeric",
            closed=False,
            description=f"derived ({feature.kind})",
        )
        for feature in spec.derived
    ]


def group_stats(spec: UseCaseSpec) -> list[GroupStatFeature]:
    """The derived features fitted inside the pipeline."""
    return [f for f in spec.derived if isinstance(f, GroupStatFeature)]


def _operand(frame: pd.DataFrame, value: Operand) -> pd.Series | float:
    if isinstance(value, str):
        if value not in frame.columns:
            return pd.Series(np.nan, index=frame.index, dtype="float64")
        return pd.to_numeric(frame[value], errors="coerce").astype("float64")
    return float(value)


def _finite(values: pd.Series | float, index: pd.Index) -> pd.Series:
    series = values if isinstance(values, pd.Series) else pd.Series(values, index=index)
    series = series.astype("float64")
    return series.where(np.isfinite(series))


def derive(frame: pd.DataFrame, feature: object) -> pd.Series | None:
    """One row-level derived column (``None`` for a group statistic: the pipeline fits it)."""
    index = frame.index
    if isinstance(feature, PrefixFeature):
        text = frame.get(feature.column, pd.Series(np.nan, index=index)).astype(object)
        return text.map(lambda v: v[: feature.length] if isinstance(v, str) else np.nan)
    if isinstance(feature, DifferenceFeature):
        return _finite(_operand(frame, feature.left) - _operand(frame, feature.right), index)
    if isinstance(feature, ProductFeature):
        return _finite(_operand(frame, feature.left) * _operand(frame, feature.right), index)
    if isinstance(feature, RatioFeature):
        denominator = _operand(frame, feature.denominator) ** feature.power
        with np.errstate(divide="ignore", invalid="ignore"):
            return _finite(_operand(frame, feature.numerator) / denominator, index)
    if isinstance(feature, DatePartFeature):
        dates = pd.to_datetime(
            frame.get(feature.column, pd.Series(pd.NaT, index=index)), errors="coerce"
        )
        parts = {
            "day_of_week": dates.dt.dayofweek,
            "day_of_month": dates.dt.day,
            "month": dates.dt.month,
            "year": dates.dt.year,
            "day_of_year": dates.dt.dayofyear,
        }
        return parts[feature.part].astype("float64")
    return None


def row_level(spec: UseCaseSpec) -> list[object]:
    """The derived features computed from a row's own values (not the group statistics)."""
    return [f for f in spec.derived if not isinstance(f, GroupStatFeature)]


def derive_value(row: dict[str, Any], feature: object) -> Any:
    """:func:`derive` of one row (model input values: floats, text, NaN for missing).

    The compiled serving executor's form, held to :func:`derive` by its property test: the
    same IEEE operations on the same floats, and NaN wherever :func:`derive` gives a missing
    or non-finite value. A date part has no such form (dates are never compiled).
    """
    if isinstance(feature, PrefixFeature):
        value = row.get(feature.column)
        return value[: feature.length] if isinstance(value, str) else math.nan
    if isinstance(feature, DifferenceFeature):
        return _finite_value(lambda: _value(row, feature.left) - _value(row, feature.right))
    if isinstance(feature, ProductFeature):
        return _finite_value(lambda: _value(row, feature.left) * _value(row, feature.right))
    if isinstance(feature, RatioFeature):
        numerator, denominator = feature.numerator, feature.denominator
        return _finite_value(
            lambda: _value(row, numerator) / _value(row, denominator) ** feature.power
        )
    raise TypeError(f"derived feature {getattr(feature, 'name', feature)!r} has no per-row form")


def _value(row: dict[str, Any], operand: Operand) -> float:
    if isinstance(operand, str):
        value = row.get(operand)
        return math.nan if value is None or isinstance(value, str) else float(value)
    return float(operand)


def _finite_value(compute: Callable[[], Any]) -> float:
    try:
        value = compute()
    except (ZeroDivisionError, OverflowError):
        return math.nan
    if not isinstance(value, float) or not math.isfinite(value):
        return math.nan  # a complex root of a negative base, an infinity, NaN
    return value


def with_derived(frame: pd.DataFrame, spec: UseCaseSpec) -> pd.DataFrame:
    """``frame`` with the spec's row-level derived features added (the frame itself if none)."""
    if not spec.derived:
        return frame
    added = {
        feature.name: values
        for feature in spec.derived
        if (values := derive(frame, feature)) is not None
    }
    return frame.assign(**added) if added else frame


def model_spec(spec: UseCaseSpec) -> UseCaseSpec:
    """The spec the model stages see: derived features are features too.

    A forecast's lags and rolling means (computed from each series' past days) and the spec's
    declared derivations become feature columns, so splits, tuning, the gate, serving and
    monitoring handle them like any other feature, with no branch of their own. Applying it
    twice changes nothing.
    """
    extra: list[ColumnSpec] = []
    if spec.task == "forecast" and spec.forecast is not None:
        extra += [
            ColumnSpec(
                name=name, type="numeric", description="derived from past days of the series"
            )
            for name in lag_features(spec)
        ]
    extra += derived_columns(spec)
    present = {c.name for c in spec.features}
    extra = [c for c in extra if c.name not in present]
    return spec.model_copy(update={"features": [*spec.features, *extra]}) if extra else spec
