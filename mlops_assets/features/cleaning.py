"""Row-level cleaning rules from the spec, applied identically by ``clean_data`` and the service.

Only rules that need nothing but the row itself live here (spellings, sentinels, types). Rules that
need other rows (group means, modes) are fitted imputers inside the model pipeline, so that test
rows never leak into training and a single served record can be handled.

Order per column: text rules (``strip``, ``map_values``) on the raw text, then the type is
enforced, then value rules (``null_if``, ``clip``) in the column's type.

Cleaning never raises on a value: whatever a landed file or a request holds, a value that cannot
be read as its column's type becomes missing and is counted in ``invalid_values`` (which the
``types`` quality check and the service report). For ``integer`` columns that includes whole
numbers outside int64 (``1e19``), which pandas' nullable ``Int64`` cannot hold.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

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

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
EXACT_FLOAT_LIMIT = 2.0**53  # from here on float64 skips whole numbers: read the text exactly
_WHOLE_CLAMP = Decimal(10**30)  # far outside int64, small enough to convert at no cost
_LONG_EXPONENT = re.compile(r"[eE][+-]?\d{5,}")  # 1e10000 and beyond: outside every float


def text_to_numbers(values: pd.Series) -> pd.Series:
    """``pd.to_numeric(values, errors="coerce")``, safe from pandas' own text parser.

    pandas (2.3) keeps a number's exponent in a C ``int``: ``"1e4294967296"`` reads as 1.0 and
    an exponent of 40 digits crashed the process (segmentation fault), so one such value in a
    request killed the service's worker and one in a landed file killed the run. Text with an
    exponent of five digits or more, beyond any float either way, is read by Python's
    ``float`` instead (infinity or 0.0); the check is one regular-expression pass over the
    text values, joined.
    """
    text = [value for value in values.tolist() if type(value) is str]
    if text and _LONG_EXPONENT.search("\n".join(text)):
        values = values.map(_long_exponent_as_float)
    return pd.to_numeric(values, errors="coerce")


def _long_exponent_as_float(value: object) -> object:
    if type(value) is not str or not _LONG_EXPONENT.search(value):
        return value
    try:
        return float(value.strip())
    except ValueError:
        return np.nan


@dataclass
class CleaningReport:
    """What cleaning did, for asset metadata and checks."""

    rows_in: int = 0
    rows_out: int = 0
    missing_columns: list[str] = field(default_factory=list)
    unexpected_columns: list[str] = field(default_factory=list)
    invalid_values: dict[str, int] = field(default_factory=dict)
    remapped_values: dict[str, int] = field(default_factory=dict)
    missing_ids: dict[str, int] = field(default_factory=dict)  # rows dropped: a required id null
    empty_rows: int = 0  # rows dropped: no input value at all
    invalid_examples: dict[str, list[str]] = field(default_factory=dict)
    """Per column, the first unreadable values and where they are (``Train.csv row 3: '1e19'``)."""
    invalid_at: dict[str, list[tuple[Any, str]]] = field(default_factory=dict, repr=False)
    """The same, by row label (named by :func:`clean_frame` once it knows the rows' files)."""


INVALID_EXAMPLES = 3


def _as_text(series: pd.Series) -> pd.Series:
    """Values as Python strings, missing kept as NaN (a number in a CSV arrives as text)."""
    text = series.astype(object)
    return text.where(text.isna(), text.map(lambda v: v if isinstance(v, str) else _fmt(v)))


def _fmt(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    try:
        return str(value)
    except ValueError:  # an int longer than Python prints (sys.get_int_max_str_digits)
        return "<integer too long to read>"


def exact_whole_number(text: object) -> int | None:
    """The whole number a numeric text spells, exactly; None if it spells a fraction or nothing.

    float64 rounds whole numbers above 2**53 (``9223372036854775807`` reads as 2**63, which
    int64 cannot hold), so near the int64 edges the text itself decides. Magnitudes beyond
    10**30 come back clamped to +-10**30: enough to tell they are outside int64, without
    building a huge int from a hostile ``1e999999999``.
    """
    try:
        number = Decimal(str(text).strip())
    except (InvalidOperation, ValueError):
        return None
    if not number.is_finite() or number != number.to_integral_value():
        return None
    return int(max(min(number, _WHOLE_CLAMP), -_WHOLE_CLAMP))


def fits_int64(number: int | None) -> bool:
    """Whether a whole number fits an ``integer`` column (pandas ``Int64``)."""
    return number is not None and INT64_MIN <= number <= INT64_MAX


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
    if isinstance(rule, ClipRule) and column.type == "numeric":
        return values.clip(lower=rule.min, upper=rule.max)
    if isinstance(rule, ClipRule) and column.type == "integer":
        # Int64 refuses a fractional bound: clip to the whole numbers inside the range.
        lower = None if rule.min is None else max(math.ceil(rule.min), INT64_MIN)
        upper = None if rule.max is None else min(math.floor(rule.max), INT64_MAX)
        return values.clip(lower=lower, upper=upper)
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
        typed = text_to_numbers(values).astype("float64")
        typed = typed.where(np.isfinite(typed))
    elif column.type == "integer":
        typed = _whole_int64(values)
    elif column.type == "date":
        typed = pd.to_datetime(values, errors="coerce", format="mixed")
    else:
        typed = values.map(lambda v: v.strip() if isinstance(v, str) else v)
        typed = typed.where(typed.notna() & (typed != ""), np.nan).astype(object)
    invalid = int((present & typed.isna()).sum())
    return typed, invalid


def _whole_int64(values: pd.Series) -> pd.Series:
    """Text values as ``Int64``: missing unless a whole number within int64, read exactly."""
    numbers = text_to_numbers(values).astype("float64")
    whole = np.isfinite(numbers) & (numbers == np.round(numbers))
    exact = whole & (numbers.abs() < EXACT_FLOAT_LIMIT)
    typed = numbers.where(exact).astype("Int64")
    edge = whole & ~exact
    if edge.any():  # rare: re-read those texts exactly, out-of-range ones become missing
        read = [exact_whole_number(text) for text in values[edge]]
        typed[edge] = pd.array([n if fits_int64(n) else None for n in read], dtype="Int64")
    return typed


def clean_column(raw: pd.Series, column: ColumnSpec, report: CleaningReport) -> pd.Series:
    """One column through its text rules, its type and its value rules."""
    values = _as_text(raw)
    for rule in column.cleaning:
        values = _apply_text_rule(values, rule, report, column.name)
    typed, invalid = _enforce_type(values, column)
    if invalid:
        report.invalid_values[column.name] = invalid
        bad = values.notna() & typed.isna()
        report.invalid_at[column.name] = [
            (label, _fmt_example(value))
            for label, value in values[bad].head(INVALID_EXAMPLES).items()
        ]
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
    _locate_examples(report, frame)
    inputs = [c.name for c in spec.input_columns]
    keep = result[inputs].notna().any(axis=1)
    report.empty_rows = int((~keep).sum())
    for column in spec.id_columns:
        if not column.nullable:
            present = result[column.name].notna()
            if int((keep & ~present).sum()):
                report.missing_ids[column.name] = int((keep & ~present).sum())
            keep &= present
    result = result[keep].reset_index(drop=True)
    report.rows_out = len(result)
    return result, report


def _fmt_example(value: object) -> str:
    text = value if isinstance(value, str) else _fmt(value)
    return repr(text) if len(text) <= 40 else repr(text[:40]) + "…"


def _locate_examples(report: CleaningReport, frame: pd.DataFrame) -> None:
    """Name each unreadable example's file and row, where the rows came from landed files."""
    files, rows = frame.get("_source_file"), frame.get("_row_number")
    for name, found in report.invalid_at.items():
        located = []
        for label, value in found:
            where = f"row {label}"
            if files is not None and rows is not None:
                where = f"{str(files.loc[label]).rsplit('/', 1)[-1]} row {rows.loc[label]}"
            located.append(f"{where}: {value}")
        report.invalid_examples[name] = located


def _empty_column(column: ColumnSpec, length: int, index: pd.Index) -> pd.Series:
    dtype = {"numeric": "float64", "integer": "Int64", "date": "datetime64[ns]"}.get(
        column.type, object
    )
    return pd.Series([None] * length, index=index, dtype=dtype)


def null_counts(frame: pd.DataFrame) -> dict[str, int]:
    """Missing values per column, for metadata."""
    return {str(name): int(count) for name, count in frame.isna().sum().items()}
