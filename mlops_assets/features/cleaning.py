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
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

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
    invalid_rows: dict[str, list[int]] = field(default_factory=dict, repr=False)
    """Per column, the positions (in the frame given) of the values counted as invalid."""


INVALID_EXAMPLES = 3


NUMBER_TEXT = re.compile(r"\s*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*", re.ASCII)
"""Numeric text as ``pd.to_numeric`` reads it: ASCII digits, sign, point, exponent, spaces."""
SPELLED_INFINITIES = {
    "inf": math.inf,
    "+inf": math.inf,
    "-inf": -math.inf,
    "infinity": math.inf,
    "+infinity": math.inf,
    "-infinity": -math.inf,
}
"""Infinities spelled out (any case, no white space), as ``pd.to_numeric`` reads them."""


def number_from_text(text: str) -> float:
    """The number a text spells, correctly rounded; NaN when it spells none (or overflows).

    The syntax is ``pd.to_numeric``'s (:data:`NUMBER_TEXT`, :data:`SPELLED_INFINITIES`; ``1e999``
    is not a number), the value Python's ``float``: correctly rounded, and independent of the
    other values of the column. ``pd.to_numeric`` is neither: it reads about a third of 17-digit
    decimals one unit in the last place off, and ``-0`` as 0 in a column of whole numbers but
    as -0.0 beside a fraction.
    """
    if NUMBER_TEXT.fullmatch(text):
        number = float(text)
        return number if number - number == 0 else math.nan  # overflowed to an infinity
    return SPELLED_INFINITIES.get(text.lower(), math.nan)


def is_plain_number(value: object) -> bool:
    """A number as such (int or float, numpy's included), not a boolean and not text."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


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


# ---------------------------------------------------------------- rules, in both forms
#
# Each rule type is defined once, by its value form: a function of one present value (missing
# is None), used as it is by the compiled per-record executor and mapped over a column by
# ``clean_frame``. A rule may add a column form that computes the same over a whole column
# faster; the property test (``mlops_assets_tests/serving/test_compiled.py``) holds both
# forms to the same results. A rule type without forms here fails ``clean_frame`` and the
# compiled executor alike (and ``test_every_rule_type_has_both_forms``).

ValueFunction = Callable[[Any], Any]


@dataclass(frozen=True)
class RuleForms:
    """How one cleaning rule type cleans: per value (the definition) and, optionally, per column.

    Attributes:
        stage: ``text`` rules run on the raw text, before the type is enforced; ``value``
            rules after, on values of the column's type.
        value: ``(rule, column) -> f``, ``f`` mapping one present value to its cleaned value
            (``None``: now missing).
        column: ``(rule, column) -> g``, ``g`` doing the same to a whole column (a Series);
            ``None``: the value form mapped over the column.
        rewrites_numbers: Whether the rule can change the text of a number (``LF`` -> ...
            could map ``0``); numbers of a column with such a rule are cleaned as text.
    """

    stage: Literal["text", "value"]
    value: Callable[[Any, ColumnSpec], ValueFunction]
    column: Callable[[Any, ColumnSpec], Callable[[pd.Series], pd.Series]] | None = None
    rewrites_numbers: bool = True


def _strip(rule: StripRule, column: ColumnSpec) -> ValueFunction:
    def strip(value: Any) -> Any:
        if isinstance(value, str):
            return value.strip() or None
        return value

    return strip


def _strip_column(rule: StripRule, column: ColumnSpec) -> Callable[[pd.Series], pd.Series]:
    return stripped


def stripped(values: pd.Series) -> pd.Series:
    """:func:`_strip`'s value form over a column (:func:`read_categorical` is the same form).

    A missing value is not text, so it is kept as it is, as :func:`map_objects` keeps it.
    """
    return map_objects(values, read_categorical)


TEXT_COLUMN_KINDS = frozenset({str, type(None), float})


def per_distinct_text(objects: list[Any], function: ValueFunction) -> list[Any] | None:
    """``function`` of each distinct text once, missing values kept; ``None`` if not text.

    A column of 10,000 values holds a few hundred distinct texts (a category, an id): one
    call per distinct text and a lookup per value, both loops in C, instead of a call per
    value. Only for a column of text and missing values (``None``, NaN): equal values of
    different types (``1``, ``1.0``, ``True``; ``0.0`` and ``-0.0``) would share one result,
    so any other value leaves the column to the per-value form (``None`` returned).
    """
    if not set(map(type, objects)) <= TEXT_COLUMN_KINDS:
        return None
    table: dict[Any, Any] = {}
    for value in dict.fromkeys(objects):
        if type(value) is str:
            table[value] = function(value)
        elif value is None or value != value:  # None or a NaN: missing, kept as it is
            table[value] = value
        else:
            return None  # a number among the text
    return list(map(table.__getitem__, objects))


def _map_values(rule: MapValuesRule, column: ColumnSpec) -> ValueFunction:
    lookup = {key.strip().casefold(): target for key, target in rule.mapping.items()}

    def remap(value: Any) -> Any:
        return lookup.get(value.strip().casefold(), value) if isinstance(value, str) else value

    return remap


def _number_sentinels(rule: NullIfRule) -> list[float]:
    return [float(v) for v in rule.values if _is_number(v)]


def _null_if(rule: NullIfRule, column: ColumnSpec) -> ValueFunction:
    if column.type in {"numeric", "integer"}:
        numbers = set(_number_sentinels(rule))
        return lambda value: None if float(value) in numbers else value
    texts = {str(v).casefold() for v in rule.values}
    return lambda value: None if isinstance(value, str) and value.casefold() in texts else value


def _null_if_column(rule: NullIfRule, column: ColumnSpec) -> Callable[[pd.Series], pd.Series]:
    if column.type in {"numeric", "integer"}:
        sentinels = _number_sentinels(rule)
        return lambda values: values.mask(values.astype("float64").isin(sentinels))
    texts = {str(v).casefold() for v in rule.values}
    return lambda values: values.mask(
        values.map(lambda v: isinstance(v, str) and v.casefold() in texts)
    )


def _clip_bounds(rule: ClipRule, column: ColumnSpec) -> tuple[Any, Any] | None:
    """The bounds a clip applies in the column's type; ``None`` for columns it does not touch.

    Int64 refuses a fractional bound: an integer column is clipped to the whole numbers inside
    the range. Like pandas' ``clip``, two bounds given the wrong way round are swapped.
    """
    lower: Any = rule.min
    upper: Any = rule.max
    if column.type == "integer":
        lower = None if lower is None else max(math.ceil(lower), INT64_MIN)
        upper = None if upper is None else min(math.floor(upper), INT64_MAX)
    elif column.type != "numeric":
        return None
    if lower is not None and upper is not None:
        lower, upper = min(lower, upper), max(lower, upper)
    return lower, upper


def _clip(rule: ClipRule, column: ColumnSpec) -> ValueFunction:
    bounds = _clip_bounds(rule, column)
    if bounds is None:
        return lambda value: value
    lower, upper = bounds

    def clip(value: Any) -> Any:
        if lower is not None and value < lower:
            return lower
        if upper is not None and value > upper:
            return upper
        return value

    return clip


def _clip_column(rule: ClipRule, column: ColumnSpec) -> Callable[[pd.Series], pd.Series]:
    bounds = _clip_bounds(rule, column)
    if bounds is None:
        return lambda values: values
    return lambda values: values.clip(lower=bounds[0], upper=bounds[1])


RULES: dict[type, RuleForms] = {
    StripRule: RuleForms("text", _strip, _strip_column, rewrites_numbers=False),
    MapValuesRule: RuleForms("text", _map_values),
    NullIfRule: RuleForms("value", _null_if, _null_if_column),
    ClipRule: RuleForms("value", _clip, _clip_column),
}
"""Every cleaning rule type of the spec (``CleaningRule``), in both forms."""


def rule_forms(rule: CleaningRule) -> RuleForms:
    """The forms of a rule's type.

    Raises:
        NotImplementedError: The rule type has no forms in :data:`RULES`.
    """
    forms = RULES.get(type(rule))
    if forms is None:
        raise NotImplementedError(f"cleaning rule {rule.rule!r} has no implementation in RULES")
    return forms


def _column_rule(rule: CleaningRule, column: ColumnSpec) -> Callable[[pd.Series], pd.Series]:
    forms = rule_forms(rule)
    if forms.column is not None:
        return forms.column(rule, column)
    value = forms.value(rule, column)
    if forms.stage == "text":
        return lambda values: map_objects(values, value)
    return lambda values: _map_present(values, value)


def _map_present(values: pd.Series, value: ValueFunction) -> pd.Series:
    """``value`` applied to the present values of a typed column, its dtype kept."""
    present = values.notna()
    result = values.astype(object)
    result[present] = [value(v) for v in values[present].tolist()]
    return result.astype(values.dtype)


def _is_number(value: object) -> bool:
    try:
        float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True


def keeps_numbers(column: ColumnSpec) -> bool:
    """Whether a column's numbers are read as numbers: no rule of it rewrites a number's text.

    Cleaning reads every value from its text (:func:`_fmt`, then :func:`number_from_text`);
    for a number that is the number itself (a float's text is its shortest round-trip repr;
    a whole float's text drops ``.0``, which turns -0.0 into 0), so the text is skipped.
    """
    return column.type in {"numeric", "integer"} and not any(
        rule_forms(rule).rewrites_numbers and rule_forms(rule).stage == "text"
        for rule in column.cleaning
    )


# ---------------------------------------------------------------- types, in both forms
#
# A type's reader maps a present value (text, or a number where :func:`keeps_numbers`) to the
# column's type, or to None when it cannot be read (counted in ``invalid_values``).


def read_numeric(value: Any) -> float | None:
    """A ``numeric`` value: a finite float, or None when unreadable."""
    if isinstance(value, str):
        number = number_from_text(value)
    elif isinstance(value, (float, np.floating)):
        number = float(value)
        number = 0.0 if number == 0 else number  # as read from its text, "0": no -0.0
    else:
        try:
            number = float(value)
        except OverflowError:
            return None
    return number if math.isfinite(number) else None


def read_integer(value: Any) -> int | None:
    """An ``integer`` value: a whole number within int64, read exactly; None otherwise."""
    if isinstance(value, str):
        number = number_from_text(value)
        if not math.isfinite(number) or number != round(number):
            return None
        whole = int(number) if abs(number) < EXACT_FLOAT_LIMIT else exact_whole_number(value)
    elif isinstance(value, (float, np.floating)):
        if not math.isfinite(value) or not float(value).is_integer():
            return None
        whole = int(value)
    else:
        whole = int(value)
    return whole if fits_int64(whole) else None


def read_categorical(value: Any) -> str | None:
    """A ``categorical`` value: the text without white space around, None when blank."""
    if isinstance(value, str):
        return value.strip() or None
    return value


def _present(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    objects = values.to_numpy(dtype=object)
    return objects, ~pd.isna(objects)


def _numeric_column(values: pd.Series) -> pd.Series:
    """:func:`read_numeric` of every present value; numpy reads an all-number column at once."""
    objects, present = _present(values)
    numbers = np.full(len(objects), np.nan)
    chosen = objects[present]
    read = None
    if set(map(type, chosen)) <= {float, int}:
        try:
            read = np.array(chosen, dtype="float64")
        except OverflowError:
            read = None
        else:
            read[~np.isfinite(read)] = np.nan
            read[read == 0] = 0.0
    if read is None:  # text, mostly: each distinct text read once (None becomes NaN in C)
        listed = chosen.tolist()
        found = per_distinct_text(listed, read_numeric)
        read = np.array(found if found is not None else list(map(read_numeric, listed)), float)
    numbers[present] = read
    return pd.Series(numbers, index=values.index)


def _integer_column(values: pd.Series) -> pd.Series:
    """:func:`read_integer` of every present value, as ``Int64``."""
    objects, present = _present(values)
    typed = pd.array([None] * len(objects), dtype="Int64")
    chosen = objects[present]
    if len(chosen):
        whole = chosen.tolist()
        plain = (
            set(map(type, whole)) == {int} and INT64_MIN <= min(whole) and max(whole) <= INT64_MAX
        )
        # Python ints within int64 read as themselves: one conversion in C, no call per value;
        # text (a CSV's) is read once per distinct text.
        read = whole if plain else per_distinct_text(whole, read_integer)
        if read is None:
            read = [read_integer(v) for v in whole]
        typed[present] = pd.array(read, dtype="Int64")
    return pd.Series(typed, index=values.index)


def _categorical_column(values: pd.Series) -> pd.Series:
    typed = stripped(values)  # read_categorical is strip's value form
    return typed.where(typed.notna(), np.nan)


def _date_column(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, errors="coerce", format="mixed")


@dataclass(frozen=True)
class TypeForms:
    """How one column type is read: per value (``None``: no such form) and per column."""

    value: Callable[[Any], Any] | None
    column: Callable[[pd.Series], pd.Series]


TYPES: dict[str, TypeForms] = {
    "numeric": TypeForms(read_numeric, _numeric_column),
    "integer": TypeForms(read_integer, _integer_column),
    "categorical": TypeForms(read_categorical, _categorical_column),
    # Dates are parsed by pandas' mixed-format reader, which has no per-value twin here: a
    # spec with a date column (the forecasts) is served by the vectorised executor only.
    "date": TypeForms(None, _date_column),
}
"""Every column type of the spec (``ColumnType``), in both forms."""


PLAIN_TEXT_KINDS = frozenset({str, type(None)})
PLAIN_NUMBER_KINDS = frozenset({int, float})  # exactly: a bool is not a number here


def _as_text(series: pd.Series, keep_numbers: bool = False) -> pd.Series:
    """Values as Python strings, missing kept as NaN (a number in a CSV arrives as text).

    With ``keep_numbers`` numbers stay numbers (:func:`keeps_numbers`). A column that holds
    only text and missing values (and numbers, where they are kept), as a JSON body's or a
    CSV's does, is returned as it is, with no call per value.
    """
    objects = series.to_numpy(dtype=object)
    kinds = set(map(type, objects.tolist()))
    if kinds <= (PLAIN_TEXT_KINDS | PLAIN_NUMBER_KINDS if keep_numbers else PLAIN_TEXT_KINDS):
        return pd.Series(objects, index=series.index, dtype=object)

    def as_text(value: Any) -> Any:
        if isinstance(value, str) or (keep_numbers and is_plain_number(value)):
            return value
        return _fmt(value)

    return map_objects(series, as_text)


def map_objects(values: pd.Series, function: ValueFunction) -> pd.Series:
    """``function`` of each present value, as Python objects (missing values kept as they are).

    Unlike ``Series.map`` nothing is converted: pandas would turn an all-number result into
    float64 (rounding whole numbers past 2**53) and fail on an int beyond float range.
    """
    objects = values.to_numpy(dtype=object)
    mapped = per_distinct_text(objects.tolist(), function)
    if mapped is None:
        missing = pd.isna(objects).tolist()
        mapped = [v if m else function(v) for v, m in zip(objects.tolist(), missing, strict=True)]
    return pd.Series(mapped, index=values.index, dtype=object)


def _enforce_type(values: pd.Series, column: ColumnSpec) -> tuple[pd.Series, pd.Series]:
    """The column in its spec type, and which present values could not be read."""
    typed = TYPES[column.type].column(values)
    return typed, values.notna() & typed.isna()


def clean_column(raw: pd.Series, column: ColumnSpec, report: CleaningReport) -> pd.Series:
    """One column through its text rules, its type and its value rules."""
    values = _as_text(raw, keeps_numbers(column))
    for rule in column.cleaning:
        if rule_forms(rule).stage == "text":
            cleaned = _column_rule(rule, column)(values)
            if isinstance(rule, MapValuesRule):
                changed = int(((cleaned != values) & values.notna()).sum())
                if changed:
                    report.remapped_values[column.name] = (
                        report.remapped_values.get(column.name, 0) + changed
                    )
            values = cleaned
    typed, unreadable = _enforce_type(values, column)
    invalid = int(unreadable.sum())
    if invalid:
        report.invalid_values[column.name] = invalid
        report.invalid_at[column.name] = [
            (label, _fmt_example(value))
            for label, value in values[unreadable].head(INVALID_EXAMPLES).items()
        ]
        report.invalid_rows[column.name] = np.flatnonzero(unreadable.to_numpy()).tolist()
    for rule in column.cleaning:
        if rule_forms(rule).stage == "value":
            typed = _column_rule(rule, column)(typed)
    return typed


def value_cleaner(column: ColumnSpec) -> Callable[[Any], tuple[Any, bool]]:
    """:func:`clean_column` of one raw value: ``(cleaned or None, whether it was unreadable)``.

    The compiled executor's cleaning, generated from the same rule and type forms.

    Raises:
        NotImplementedError: The column's type or one of its rules has no value form.
    """
    read = TYPES[column.type].value
    if read is None:
        raise NotImplementedError(f"{column.name}: {column.type} columns have no value form")
    text_rules = [
        rule_forms(r).value(r, column) for r in column.cleaning if rule_forms(r).stage == "text"
    ]
    value_rules = [
        rule_forms(r).value(r, column) for r in column.cleaning if rule_forms(r).stage == "value"
    ]
    keep = keeps_numbers(column)

    def clean(value: Any) -> tuple[Any, bool]:
        if value is None or (isinstance(value, float) and value != value):
            return None, False
        if not isinstance(value, str) and not (keep and is_plain_number(value)):
            value = _fmt(value)
        for rule in text_rules:
            value = rule(value)
            if value is None:
                return None, False
        typed = read(value)
        if typed is None:
            return None, True
        for rule in value_rules:
            typed = rule(typed)
            if typed is None:
                return None, False
        return typed, False

    return clean


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
