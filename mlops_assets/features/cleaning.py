"""Row-level cleaning rules from the spec, applied identically by ``clean_data`` and the service.

Only rules that need nothing but the row itself live here (spellings, sentinels, types). Rules that
need other rows (group means, modes) are fitted imputers inside the model pipeline, so that test
rows never leak into training and a single served record can be handled.

Order per column: text rules (``strip``, ``map_values``) on the raw text, then the type is
enforced, then value rules (``null_if``, ``clip``) in the column's type.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mlops_assets.ingest.readers import normalize_header
from mlops_assets.specs.model import (
    CleaningRule,
    ClipRule,
    ColumnSpec,
    MapValuesRule,
    NullIfRule,
    StripRule,
    UseCaseSpec,
)

META_COLUMNS = ["_landed_date", "_source_file", "_row_number"]


@dataclass
class CleaningReport:
    """What cleaning did, for asset metadata and checks."""

    rows_in: int = 0
    rows_out: int = 0
    missing_columns: list[str] = field(default_factory=list)
    unexpected_columns: list[str] = field(default_factory=list)
    invalid_values: dict[str, int] = field(default_factory=dict)
    remapped_values: dict[str, int] = field(default_factory=dict)


def _as_text(series: pd.Series) -> pd.Series:
    """Values as Python strings, missing kept as NaN (a number in a CSV arrives as text)."""
    text = series.astype(object)
    return text.where(text.isna(), text.map(lambda v: v if isinstance(v, str) else _fmt(v)))


def _fmt(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _apply_text_rule(values: pd.Series, rule: CleaningRule, report: CleaningReport, name: str):
    if isinstance(rule, StripRule):
        stripped = values.map(lambda v: v.strip() if isinstance(v, str) else v)
        return stripped.where(stripped != "", np.nan)
    if isinstance(rule, MapValuesRule):
        lookup = {key.strip().casefold(): target for key, target in rule.mapping.items()}
        mapped = values.map(
            lambda v: lookup.get(v.strip().casefold(), v) if isinstance(v, str) else v
        )
        changed = int(((mapped != values) & values.notna()).sum())
        if changed:
            report.remapped_values[name] = report.remapped_values.get(name, 0) + changed
        return mapped
    return values


def _apply_value_rule(values: pd.Series, rule: CleaningRule, column: ColumnSpec) -> pd.Series:
    if isinstance(rule, NullIfRule):
        if column.type in {"numeric", "integer"}:
            sentinels = [float(v) for v in rule.values if _is_number(v)]
            return values.mask(values.astype("float64").isin(sentinels))
        sentinels_text = {str(v).casefold() for v in rule.values}
        return values.mask(
            values.map(lambda v: isinstance(v, str) and v.casefold() in sentinels_text)
        )
    if isinstance(rule, ClipRule) and column.type in {"numeric", "integer"}:
        return values.clip(lower=rule.min, upper=rule.max)
    return values


def _is_number(value: object) -> bool:
    try:
        float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True


def _enforce_type(values: pd.Series, column: ColumnSpec) -> tuple[pd.Series, int]:
    """The column in its spec type; returns how many present values could not be read."""
    present = values.notna()
    if column.type == "numeric":
        typed = pd.to_numeric(values, errors="coerce").astype("float64")
        typed = typed.where(np.isfinite(typed))
    elif column.type == "integer":
        numbers = pd.to_numeric(values, errors="coerce").astype("float64")
        whole = numbers.where(np.isfinite(numbers) & (numbers == np.round(numbers)))
        typed = whole.astype("Int64")
    elif column.type == "date":
        typed = pd.to_datetime(values, errors="coerce", format="mixed")
    else:
        typed = values.map(lambda v: v.strip() if isinstance(v, str) else v)
        typed = typed.where(typed.notna() & (typed != ""), np.nan).astype(object)
    invalid = int((present & typed.isna()).sum())
    return typed, invalid


def clean_column(raw: pd.Series, column: ColumnSpec, report: CleaningReport) -> pd.Series:
    """One column through its text rules, its type and its value rules."""
    values = _as_text(raw)
    for rule in column.cleaning:
        values = _apply_text_rule(values, rule, report, column.name)
    typed, invalid = _enforce_type(values, column)
    if invalid:
        report.invalid_values[column.name] = invalid
    for rule in column.cleaning:
        typed = _apply_value_rule(typed, rule, column)
    return typed


def clean_target(raw: pd.Series, spec: UseCaseSpec, report: CleaningReport) -> pd.Series:
    """The target: classes as text, numbers as floats; unreadable values become missing."""
    target = spec.target
    column = ColumnSpec(
        name=target.name,
        type="categorical" if spec.is_classification else "numeric",
        categories=target.classes,
        closed=False,
        min=None if spec.is_classification else target.min,
        max=None if spec.is_classification else target.max,
        cleaning=[StripRule(), *target.cleaning],
    )
    values = clean_column(raw, column, report)
    if spec.is_classification and target.classes:
        values = values.where(values.isin(target.classes), np.nan)
    return values


def clean_frame(frame: pd.DataFrame, spec: UseCaseSpec) -> tuple[pd.DataFrame, CleaningReport]:
    """Apply the spec's row-level rules: the frame ``clean_data`` stores and the service scores.

    Keeps id, feature, target and ingestion columns; drops rows with no input value at all and
    rows whose required id is missing (they cannot be split or joined to labels).
    """
    report = CleaningReport(rows_in=len(frame))
    frame = frame.rename(columns=normalize_header)
    known = {c.name for c in spec.input_columns} | {spec.target.name} | set(META_COLUMNS)
    report.unexpected_columns = sorted(c for c in frame.columns if c not in known and c[:1] != "_")
    cleaned: dict[str, pd.Series] = {}
    for column in spec.input_columns:
        if column.name in frame.columns:
            cleaned[column.name] = clean_column(frame[column.name], column, report)
        else:
            report.missing_columns.append(column.name)
            cleaned[column.name] = _empty_column(column, len(frame), frame.index)
    if spec.target.name in frame.columns:
        cleaned[spec.target.name] = clean_target(frame[spec.target.name], spec, report)
    for meta in META_COLUMNS:
        if meta in frame.columns:
            cleaned[meta] = frame[meta]
    result = pd.DataFrame(cleaned, index=frame.index)
    inputs = [c.name for c in spec.input_columns]
    keep = result[inputs].notna().any(axis=1)
    for column in spec.id_columns:
        if not column.nullable:
            keep &= result[column.name].notna()
    result = result[keep].reset_index(drop=True)
    report.rows_out = len(result)
    return result, report


def _empty_column(column: ColumnSpec, length: int, index: pd.Index) -> pd.Series:
    dtype = {"numeric": "float64", "integer": "Int64", "date": "datetime64[ns]"}.get(
        column.type, object
    )
    return pd.Series([None] * length, index=index, dtype=dtype)


def null_counts(frame: pd.DataFrame) -> dict[str, int]:
    """Missing values per column, for metadata."""
    return {str(name): int(count) for name, count in frame.isna().sum().items()}
