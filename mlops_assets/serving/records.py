"""What a client may send: the request schema generated from the spec, and column-wise checks.

A request is ``{"records": [{<field>: <raw value>, ...}, ...]}``, or for bulk scoring the same
values as columns, ``{"columns": {<field>: [<raw value>, ...], ...}}`` (cheaper to parse and to
answer). Records carry raw values (the
service cleans them with the training code), so the checks here are about what cleaning cannot
decide: the shape of the request, missing and unknown fields, and values of the wrong JSON type,
non-finite numbers or text that is not a number. Domain checks (ranges, closed category sets,
required values) run after cleaning, in :mod:`mlops_assets.features.validation`.

Every check walks one column at a time over plain Python lists: a 10,000-record request costs a
few list scans, not 10,000 pydantic models. The pydantic model built here documents the contract
in the OpenAPI page; it is not used to parse requests.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Context, Decimal
from typing import Annotated, Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, create_model

from mlops_assets.environment import DEFAULT_MAX_RECORDS
from mlops_assets.features.cleaning import (
    EXACT_FLOAT_LIMIT,
    INT64_MAX,
    INT64_MIN,
    PLAIN_TEXT_KINDS,
    clean_frame,
    exact_whole_number,
    fits_int64,
    number_from_text,
)
from mlops_assets.features.validation import clip, quote, validate_frame
from mlops_assets.generators import get_generator
from mlops_assets.specs.model import ClipRule, ColumnSpec, MapValuesRule, NullIfRule, UseCaseSpec

ROW_NUMBER = "_row_number"
DEFAULT_PROBLEM_LIMIT = 20
MAX_TEXT_CHARS = 1000
"""Longest text value accepted: a category or id of 10 MB would be scored and logged whole."""


@dataclass(frozen=True, order=True)
class RequestProblem:
    """One thing wrong with a request: where (``records[3].Outlet_Type``) and what."""

    row: int
    column: int
    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        """The problem as JSON-ready data for an error response."""
        field = self.location.rsplit(".", 1)[1] if "." in self.location else None
        if field is not None and self.location.startswith("columns."):
            field = re.sub(r"\[\d+\]$", "", field)  # columns.X[3] is record 3's field X
        return {
            "record": self.row if self.row >= 0 else None,
            "field": field,
            "message": self.message,
        }


def problem(
    row: int, column: ColumnSpec | str | None, message: str, order: int = 0
) -> RequestProblem:
    """A problem of a record's field (``column``), a record (``None``) or the request (row -1)."""
    if row < 0:
        return RequestProblem(row, order, "records", message)
    name = column.name if isinstance(column, ColumnSpec) else column
    location = f"records[{row}].{name}" if name else f"records[{row}]"
    return RequestProblem(row, order, location, message)


# ---------------------------------------------------------------- schema for the OpenAPI page


# Numeric text as pandas reads it (spaces around allowed); ``nan``/``inf`` spellings are refused.
NUMBER_TEXT_PATTERN = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"
NOT_BLANK_PATTERN = r"\S"
_REGEX_SPECIAL = set("\\^$.|?*+()[]{}/")


def _regex_literal(text: str) -> str:
    """``text`` as a regex literal valid in Python and ECMA-262 (``re.escape`` escapes spaces)."""
    return "".join(f"\\{c}" if c in _REGEX_SPECIAL else c for c in text)


def _mapped_spellings(column: ColumnSpec) -> dict[str, str]:
    """Spellings a ``map_values`` rule turns into one of the column's categories."""
    categories = set(column.categories or [])
    return {
        spelling: target
        for rule in column.cleaning
        if isinstance(rule, MapValuesRule)
        for spelling, target in rule.mapping.items()
        if target in categories or not column.closed
    }


def _numeric_sentinels(column: ColumnSpec) -> list[float]:
    """Numbers a ``null_if`` rule turns into missing (text sentinels do not apply to numbers)."""
    return [
        float(value)
        for rule in column.cleaning
        if isinstance(rule, NullIfRule)
        for value in rule.values
        if _is_number(value)
    ]


def _is_number(value: object) -> bool:
    try:
        return math.isfinite(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def _accepted_bounds(column: ColumnSpec) -> tuple[float | None, float | None]:
    """The range the service enforces on raw numbers: a ``clip`` into the domain lifts a bound.

    Cleaning clips before the domain check, so a value past a clip bound that lies inside the
    domain is clipped, not rejected.
    """
    lower, upper = column.min, column.max
    for rule in column.cleaning:
        if isinstance(rule, ClipRule):
            if rule.min is not None and (lower is None or rule.min >= lower):
                lower = None
            if rule.max is not None and (upper is None or rule.max <= upper):
                upper = None
    return lower, upper


def value_schema(column: ColumnSpec) -> dict[str, Any]:
    """JSON schema of a column's raw value as the service accepts it (before cleaning).

    It must not forbid what the service accepts: numbers may come as numeric text, category
    spellings that cleaning maps or strips are allowed, clipped numbers are not bounded, and a
    ``null_if`` sentinel of a nullable column is allowed even outside the domain.
    """
    nullable = ["null"] if column.nullable else []
    if column.type in {"numeric", "integer"}:
        return _number_schema(column, nullable)
    schema: dict[str, Any] = {"type": ["string", *nullable], "maxLength": MAX_TEXT_CHARS}
    spellings = _mapped_spellings(column)
    if column.categories:
        schema["examples"] = [*column.categories, *spellings]
    if column.type == "categorical" and column.closed and column.categories and not spellings:
        # Exact categories, white space around them stripped (and blank is null).
        choices = "|".join(_regex_literal(c) for c in column.categories)
        optional = "?" if column.nullable else ""
        schema["pattern"] = rf"^\s*({choices}){optional}\s*$"
    elif not column.nullable:  # blank text is missing, and missing is refused
        schema |= {"minLength": 1, "pattern": NOT_BLANK_PATTERN}
    return schema


def _number_schema(column: ColumnSpec, nullable: list[str]) -> dict[str, Any]:
    integer = column.type == "integer"
    schema: dict[str, Any] = {"type": ["integer" if integer else "number", "string", *nullable]}
    lower, upper = _accepted_bounds(column)
    if integer:  # an integer column holds int64 whatever the clip rules say
        schema["minimum"] = INT64_MIN if lower is None else max(math.ceil(lower), INT64_MIN)
        schema["maximum"] = INT64_MAX if upper is None else min(math.floor(upper), INT64_MAX)
    else:
        schema |= {k: v for k, v in (("minimum", lower), ("maximum", upper)) if v is not None}
    if not any(isinstance(rule, MapValuesRule) for rule in column.cleaning):
        schema["pattern"] = NUMBER_TEXT_PATTERN  # a text mapping may accept any spelling
    outside = [
        value
        for value in _numeric_sentinels(column)
        if (lower is not None and value < lower) or (upper is not None and value > upper)
    ]
    if column.nullable and outside:
        return {"anyOf": [schema, {"enum": outside}]}
    return schema


def _python_type(column: ColumnSpec) -> Any:
    """A Python type close to the schema, so the model can still check a record roughly."""
    value: Any = {"numeric": float | str, "integer": int | str}.get(column.type, str)
    return value | None if column.nullable else value


def _description(column: ColumnSpec) -> str:
    parts = [column.description] if column.description else []
    if column.type in {"numeric", "integer"}:
        kind, text = ("A whole number", "12") if column.type == "integer" else ("A number", "12.5")
        parts.append(f'{kind}, as a JSON number or as numeric text ("{text}").')
        clips = [r for r in column.cleaning if isinstance(r, ClipRule)]
        for rule in clips:
            parts.append(f"Values outside [{rule.min}, {rule.max}] are clipped into it.")
        sentinels = _numeric_sentinels(column)
        if sentinels:
            verb = "means" if len(sentinels) == 1 else "mean"
            parts.append(f"{', '.join(f'{v:g}' for v in sentinels)} {verb} unknown (null).")
    spellings = _mapped_spellings(column)
    if column.type == "categorical" and column.categories and column.closed:
        parts.append(f"One of: {', '.join(column.categories)} (spaces around are ignored).")
    if spellings:
        mapped = ", ".join(f"{k} ({v})" for k, v in spellings.items())
        parts.append(f"Also accepted, in any case: {mapped}.")
    if column.type == "categorical" and column.categories and not column.closed:
        parts.append(f"Known values: {', '.join(column.categories)}.")
    rules = [rule.rule for rule in column.cleaning]
    if rules:
        parts.append(f"Raw values are cleaned first ({', '.join(rules)}).")
    parts.append("null when unknown." if column.nullable else "Required.")
    return " ".join(parts)


def example_record(spec: UseCaseSpec) -> dict[str, Any]:
    """A realistic record for the OpenAPI page, accepted by the service.

    With a generator (every bundled use case), the first generated row that the service
    accepts as it is (real ids, prices and categories, seed 0); otherwise a plausible one:
    numbers in the middle of their range (not at a bound, not on a ``null_if`` sentinel),
    categories the first of the spec's, dates the first partition day, a made-up id
    (``ITEM-001`` for ``Item_Identifier``) for a required field with no known values.
    """
    return _generated_example(spec) or {
        column.name: _example_value(column, spec) for column in spec.input_columns
    }


def _generated_example(spec: UseCaseSpec, rows: int = 20) -> dict[str, Any] | None:
    if not spec.generator:
        return None
    try:
        generated = get_generator(spec.generator).generate(rows, spec.partitions.start_date, seed=0)
    except Exception:  # noqa: BLE001 - an outside generator that fails falls back to the plain one
        return None
    names = [column.name for column in spec.input_columns]
    if not set(names) <= set(generated.columns):
        return None
    records = [
        {name: _plain_value(row[name]) for name in names}
        for row in generated[names].to_dict("records")
    ]
    if structure_problems(records, spec, max_records=len(records)):
        return None
    columns = columns_of(records, spec)
    bad = {p.row for p in type_problems(columns, spec)}
    cleaned, _ = clean_frame(raw_frame(columns), spec)
    cleaned.index = pd.Index(cleaned[ROW_NUMBER].to_numpy(), name=ROW_NUMBER)
    bad |= set(range(len(records))) - set(cleaned.index.tolist())
    bad |= {found.row for found in validate_frame(cleaned, spec, limit=max(len(cleaned), 1))}
    return next((r for i, r in enumerate(records) if i not in bad), None)


def _plain_value(value: Any) -> Any:
    """A generated value as JSON would carry it."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat()
    return value


def _example_value(column: ColumnSpec, spec: UseCaseSpec) -> Any:
    if column.type in {"numeric", "integer"}:
        low, high = column.min, column.max
        if low is not None and high is not None:
            value = (low + high) / 2
        else:
            value = low if low is not None else (high - 1 if high is not None else 1.0)
        if value in _numeric_sentinels(column):
            value = (value + high) / 2 if high is not None else value + 1
        return round(value) if column.type == "integer" else round(value, 2)
    if column.type == "date":
        return spec.partitions.start_date.isoformat()
    if column.categories:
        return column.categories[0]
    if column.nullable:
        return None
    first_word = re.split(r"[\W_]+", column.name)[0]
    return f"{first_word.upper()}-001"


def record_model(spec: UseCaseSpec) -> type[BaseModel]:
    """A pydantic model of one record, generated from the spec (for documentation and clients).

    Each field's JSON schema is :func:`value_schema` (the raw input the service accepts); the
    model carries the record's example, its required fields and ``additionalProperties: false``.
    """
    fields: dict[str, Any] = {}
    for column in spec.input_columns:
        annotation = Annotated[_python_type(column), WithJsonSchema(value_schema(column))]
        fields[column.name] = (annotation, Field(..., description=_description(column)))
    title = "".join(part.capitalize() for part in spec.name.split("_")) + "Record"
    return create_model(
        title,
        __config__=ConfigDict(
            extra="forbid", title=title, json_schema_extra={"examples": [example_record(spec)]}
        ),
        __doc__=f"One {spec.name} record: every field present, raw values allowed.",
        **fields,
    )


def columns_json_schema(spec: UseCaseSpec, max_records: int = DEFAULT_MAX_RECORDS) -> dict:
    """JSON schema of the ``columns`` field: one equally long array per spec column."""
    properties = record_model(spec).model_json_schema()["properties"]
    return {
        "type": "object",
        "properties": {
            name: {
                "type": "array",
                "items": {k: v for k, v in schema.items() if k not in {"title", "description"}},
                "minItems": 1,
                "maxItems": max_records,
                "description": schema.get("description", ""),
            }
            for name, schema in properties.items()
        },
        "required": list(properties),
        "additionalProperties": False,
        "description": f"{spec.name} records as columns of equal length (1 to {max_records}).",
        "examples": [{name: [value] for name, value in example_record(spec).items()}],
    }


# ---------------------------------------------------------------- shape of the request


def structure_problems(
    records: Any,
    spec: UseCaseSpec,
    max_records: int = DEFAULT_MAX_RECORDS,
    limit: int = DEFAULT_PROBLEM_LIMIT,
) -> list[RequestProblem]:
    """Problems of the request's shape: not a non-empty list, too long, missing/unknown fields.

    Cheap enough to run before a request joins a batch: when every record has exactly the
    spec's fields (the normal case) it costs one set union and one length scan.
    """
    if not isinstance(records, list):
        return [problem(-1, None, f"expected a list of records, got {_json_type(records)}")]
    if not records:
        return [problem(-1, None, "is empty; send at least one record")]
    if len(records) > max_records:
        return [problem(-1, None, f"has {len(records)} records; at most {max_records} per request")]
    expected = [c.name for c in spec.input_columns]
    if all(type(r) is dict and len(r) == len(expected) for r in records):
        if set().union(*records) == set(expected):
            return []
    return _record_field_problems(records, expected, limit)


def column_structure_problems(
    columns: Any, spec: UseCaseSpec, max_records: int = DEFAULT_MAX_RECORDS
) -> list[RequestProblem]:
    """Problems of a columnar body's shape: missing/unknown columns, not lists, unequal lengths."""
    if not isinstance(columns, dict):
        return [column_problem(None, f"expected an object of columns, got {_json_type(columns)}")]
    expected = [c.name for c in spec.input_columns]
    found = [column_problem(name, "is missing") for name in expected if name not in columns]
    found += [
        column_problem(clip(str(name)), f"unknown column (expected {', '.join(expected)})")
        for name in columns
        if name not in set(expected)
    ]
    found += [
        column_problem(name, f"expected an array, got {_json_type(columns[name])}")
        for name in expected
        if name in columns and not isinstance(columns[name], list)
    ]
    if found:
        return found
    lengths = {len(columns[name]) for name in expected}
    if len(lengths) > 1:
        sizes = ", ".join(f"{name}: {len(columns[name])}" for name in expected)
        return [column_problem(None, f"columns differ in length ({sizes})")]
    length = lengths.pop()
    if not length:
        return [column_problem(None, "are empty; send at least one record")]
    if length > max_records:
        return [column_problem(None, f"hold {length} records; at most {max_records} per request")]
    return []


def column_problem(name: str | None, message: str) -> RequestProblem:
    """A problem of a columnar body (``columns.Item_MRP``) or of all its columns."""
    return RequestProblem(-1, 0, f"columns.{name}" if name else "columns", message)


def as_column_location(found: RequestProblem) -> RequestProblem:
    """A record problem renamed for a columnar body (``records[3].X`` -> ``columns.X[3]``)."""
    match = re.fullmatch(r"records\[(\d+)\](?:\.(.+))?", found.location)
    if match is None:
        return found
    row, name = match.groups()
    location = f"columns.{name}[{row}]" if name else f"columns[*][{row}]"
    return RequestProblem(found.row, found.column, location, found.message)


def _record_field_problems(
    records: Sequence[Any], expected: list[str], limit: int
) -> list[RequestProblem]:
    wanted = set(expected)
    found: list[RequestProblem] = []
    for row, record in enumerate(records):
        if not isinstance(record, dict):
            found.append(problem(row, None, f"expected an object, got {_json_type(record)}"))
        else:
            for order, name in enumerate(expected):
                if name not in record:
                    found.append(problem(row, name, "is missing (send null when unknown)", order))
            for name in record:
                if name not in wanted:
                    found.append(
                        problem(
                            row,
                            clip(str(name)),
                            f"unknown field (expected {', '.join(expected)})",
                            len(expected),
                        )
                    )
        if len(found) >= limit:
            break
    return found[:limit]


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"number {_int_text(value)}"
    if isinstance(value, float):
        return f"number {value!r}"
    if isinstance(value, str):
        return f"string {quote(value)}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


# ---------------------------------------------------------------- values, column by column


def columns_of(records: Sequence[Mapping[str, Any]], spec: UseCaseSpec) -> dict[str, list[Any]]:
    """The records as one list per spec column (records already passed ``structure_problems``).

    One ``itemgetter`` pass over the records and a transpose, both in C: a Python loop per
    column and record cost 14 ms of a 10,000-record request.
    """
    names = [c.name for c in spec.input_columns]
    if len(names) == 1 or not records:
        return {name: [record[name] for record in records] for name in names}
    rows = map(operator.itemgetter(*names), records)
    return {name: list(values) for name, values in zip(names, zip(*rows, strict=True), strict=True)}


def type_problems(columns: Mapping[str, list[Any]], spec: UseCaseSpec) -> list[RequestProblem]:
    """Values of the wrong type for their column; every one is reported, in column order."""
    found: list[RequestProblem] = []
    for order, column in enumerate(spec.input_columns):
        values = columns[column.name]
        if column.type in {"numeric", "integer"}:
            found.extend(_number_problems(values, column, order))
        elif column.type == "date":
            found.extend(_date_problems(values, column, order))
        else:
            found.extend(_text_problems(values, column, order))
    return found


def _number_problems(values: list[Any], column: ColumnSpec, order: int) -> list[RequestProblem]:
    """Numbers must be JSON numbers or numeric text, finite, and whole for integer columns.

    An integer column holds int64 (what cleaning's ``Int64`` can hold): a whole number outside
    it is out of range. JSON integers are compared exactly; floats of that size are whole
    numbers already, and text near the edges is read exactly, as cleaning reads it.
    """
    if _plainly_valid_numbers(values, column):
        return []
    integer = column.type == "integer"
    found: list[RequestProblem] = []
    text_rows: list[int] = []
    numbers: list[tuple[int, float]] = []
    for row, value in enumerate(values):
        kind = type(value)
        if value is None:
            continue
        if kind is float:
            numbers.append((row, value))
        elif kind is int and integer:
            if not INT64_MIN <= value <= INT64_MAX:
                message = f"is out of range for an integer: {_int_text(value)}"
                found.append(problem(row, column, message, order))
        elif kind is int:
            try:
                numbers.append((row, float(value)))
            except OverflowError:
                message = f"is out of range for a number: {_int_text(value)}"
                found.append(problem(row, column, message, order))
        elif kind is str:
            text_rows.append(row)
        else:
            found.append(problem(row, column, f"expected a number, got {_json_type(value)}", order))
    for row in text_rows:  # read as cleaning reads text (correctly rounded, pandas' syntax)
        message = _text_number_problem(values[row], number_from_text(values[row]), integer)
        if message:
            found.append(problem(row, column, message, order))
    for row, number in numbers:
        if not math.isfinite(number):
            found.append(problem(row, column, f"must be a finite number, got {number}", order))
        elif integer and number != round(number):
            found.append(problem(row, column, f"expected a whole number, got {number}", order))
        elif integer and not -(2.0**63) <= number < 2.0**63:
            message = f"is out of range for an integer: {number!r}"
            found.append(problem(row, column, message, order))
    return found


def _text_number_problem(text: str, number: float, integer: bool) -> str | None:
    """What is wrong with a number sent as text (``number``: :func:`number_from_text` of it)."""
    if math.isnan(number):
        if not text.strip():
            return "expected a number or null, got ''"
        if _spells_non_finite(text):  # "nan", "1e999": pandas reads neither as a number
            return f"must be a finite number, got {_json_type(text)}"
        return f"expected a number, got {_json_type(text)}"
    if not math.isfinite(number):
        return f"must be a finite number, got {number}"
    if integer and number != round(number):
        return f"expected a whole number, got {number}"
    if integer and abs(number) >= EXACT_FLOAT_LIMIT:  # beyond float64's exact whole numbers
        exact = exact_whole_number(text)
        if exact is None:
            return f"expected a whole number, got {quote(text)}"
        if not fits_int64(exact):
            return f"is out of range for an integer: {quote(text)}"
    return None


def _spells_non_finite(text: str) -> bool:
    """Whether text spells NaN or an infinity (``1e999`` overflows); long text spells neither."""
    if len(text) > 400:  # a float's longest useful spelling is far shorter
        return False
    try:
        return not math.isfinite(float(text))
    except ValueError:
        return False


def _int_text(value: int) -> str:
    """A JSON integer for a message: as sent if short, else in scientific notation."""
    if -(10**25) < value < 10**25:
        return str(value)
    return f"{Decimal(value).normalize(Context(prec=6)):e}"


def _plainly_valid_numbers(values: list[Any], column: ColumnSpec) -> bool:
    """Fast path for the usual column: only ints, floats and nulls, all finite (and whole).

    NumPy reads ``None`` as NaN, so the NaN count must equal the ``None`` count: a real NaN
    sent by the client is not plainly valid and goes through the detailed checks. Integers
    from 2**53 on, where float64 skips whole numbers, go there too (to test int64 exactly).
    """
    kinds = set(map(type, values))
    if not kinds <= {int, float, type(None)}:
        return False
    try:
        numbers = np.array(values, dtype=float)
    except (TypeError, ValueError, OverflowError):
        return False
    missing = np.isnan(numbers)
    if int(missing.sum()) != values.count(None) or np.isinf(numbers).any():
        return False
    present = numbers[~missing]
    if column.type != "integer":
        return True
    return bool(
        (present == np.round(present)).all() and (np.abs(present) < EXACT_FLOAT_LIMIT).all()
    )


def _text_problems(values: list[Any], column: ColumnSpec, order: int) -> list[RequestProblem]:
    found = []
    if not set(map(type, values)) <= PLAIN_TEXT_KINDS:
        found = [
            problem(row, column, f"expected a string, got {_json_type(value)}", order)
            for row, value in enumerate(values)
            if value is not None and type(value) is not str
        ]
    elif max(map(len, filter(None, values)), default=0) <= MAX_TEXT_CHARS:
        return []  # the usual column, checked in C: text (or null) of a plausible length
    found.extend(
        problem(row, column, f"is longer than {MAX_TEXT_CHARS} characters: {quote(value)}", order)
        for row, value in enumerate(values)
        if type(value) is str and len(value) > MAX_TEXT_CHARS
    )
    return sorted(found)


def _date_problems(values: list[Any], column: ColumnSpec, order: int) -> list[RequestProblem]:
    found = _text_problems(values, column, order)
    bad = {p.row for p in found}
    rows = [r for r, v in enumerate(values) if isinstance(v, str) and v.strip() and r not in bad]
    if rows:
        parsed = pd.to_datetime(
            pd.Series([values[r] for r in rows], dtype=object), errors="coerce", format="mixed"
        )
        for row, value in zip(rows, parsed.isna().tolist(), strict=True):
            if value:
                found.append(problem(row, column, f"is not a date: {quote(values[row])}", order))
    return found


def raw_frame(columns: Mapping[str, list[Any]]) -> pd.DataFrame:
    """The records as a frame for ``clean_frame``, rows numbered (the number survives cleaning)."""
    frame = pd.DataFrame({name: pd.Series(vals, dtype=object) for name, vals in columns.items()})
    frame[ROW_NUMBER] = range(len(frame))
    return frame
