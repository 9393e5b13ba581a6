"""Column-wise validation of cleaned rows against the spec's domains.

Used by the service (a problem is a 4xx naming the field) and by the data quality checks (a
problem count per column). Vectorised per column: a 10,000-row batch costs a few column scans,
not 10,000 pydantic models.

Messages quote a client's value through :func:`quote` (also used by the request checks of
:mod:`mlops_assets.serving.records`): a quote is cut at :data:`QUOTE_LIMIT` characters and a
category list at :data:`CATEGORY_LIMIT` values, so a 10 MB string cannot make a 10 MB answer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd

from mlops_assets.specs.model import ColumnSpec, UseCaseSpec

QUOTE_LIMIT = 80
CATEGORY_LIMIT = 20


def clip(text: str, limit: int = QUOTE_LIMIT) -> str:
    """``text`` cut at ``limit`` characters, saying how long it was (``abc…(12 chars)``)."""
    return text if len(text) <= limit else f"{text[:limit]}…({len(text)} chars)"


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """A client's value for a message: its ``repr``, a long string cut at ``limit`` characters.

    The string is cut before ``repr`` so that a 10 MB value is never copied whole again.
    """
    if isinstance(value, str):
        return repr(value) if len(value) <= limit else f"{value[:limit]!r}…({len(value)} chars)"
    try:
        return clip(repr(value), limit)
    except ValueError:  # an int longer than Python prints
        return "<integer too long to show>"


def categories_text(categories: Sequence[str], limit: int = CATEGORY_LIMIT) -> str:
    """A category list for a message: whole up to ``limit`` values, else the first and a count."""
    if len(categories) <= limit:
        return str(list(categories))
    return f"{str(list(categories[:limit]))[:-1]}, …] ({len(categories)} values)"


@dataclass(frozen=True)
class Problem:
    """One invalid value: which row, which field, what is wrong."""

    row: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"records[{self.row}].{self.field}: {self.message}"


def below_message(value: float, bound: float) -> str:
    """A number under the column's ``min`` (``value`` as float64, as the check compares it)."""
    return f"{value} is below {bound}"


def above_message(value: float, bound: float) -> str:
    """A number over the column's ``max``."""
    return f"{value} is above {bound}"


def category_message(value: object, listed: str) -> str:
    """A value outside a closed category set (``listed``: :func:`categories_text` of the set)."""
    return f"{quote(value)} is not one of {listed}"


REQUIRED = "is required"


def column_problems(values: pd.Series, column: ColumnSpec, limit: int = 20) -> list[Problem]:
    """Problems of one cleaned column: missing where required, outside range or category set."""
    problems: list[Problem] = []
    missing = values.isna()
    if not column.nullable:
        for row in missing[missing].index[:limit]:
            problems.append(Problem(int(row), column.name, REQUIRED))
    present = values[~missing]
    if column.type in {"numeric", "integer"} and len(present):
        numbers = present.astype("float64")
        if column.min is not None:
            for row, value in numbers[numbers < column.min].head(limit).items():
                problems.append(Problem(int(row), column.name, below_message(value, column.min)))
        if column.max is not None:
            for row, value in numbers[numbers > column.max].head(limit).items():
                problems.append(Problem(int(row), column.name, above_message(value, column.max)))
    if column.type == "categorical" and column.closed and column.categories and len(present):
        outside = present[~present.isin(column.categories)]
        listed = categories_text(column.categories)
        for row, value in outside.head(limit).items():
            problems.append(Problem(int(row), column.name, category_message(value, listed)))
    return problems


def value_check(column: ColumnSpec) -> Callable[[object], str | None]:
    """:func:`column_problems` of one cleaned value (``None``: missing): its message, or None.

    The compiled executor's domain check, with the messages of the column form. The category
    list is quoted once here, not per value.
    """
    required = not column.nullable
    if column.type in {"numeric", "integer"}:
        low, high = column.min, column.max

        def check_number(value: object) -> str | None:
            if value is None:
                return REQUIRED if required else None
            number = float(value)  # type: ignore[arg-type]
            if low is not None and number < low:
                return below_message(number, low)
            if high is not None and number > high:
                return above_message(number, high)
            return None

        return check_number
    if column.type == "categorical" and column.closed and column.categories:
        allowed = set(column.categories)
        listed = categories_text(column.categories)

        def check_category(value: object) -> str | None:
            if value is None:
                return REQUIRED if required else None
            if value not in allowed:
                return category_message(value, listed)
            return None

        return check_category
    return lambda value: REQUIRED if required and value is None else None


def validate_frame(frame: pd.DataFrame, spec: UseCaseSpec, limit: int = 20) -> list[Problem]:
    """Problems of a cleaned frame, in column order, at most ``limit`` per column."""
    problems: list[Problem] = []
    for column in spec.input_columns:
        if column.name in frame.columns:
            problems.extend(column_problems(frame[column.name], column, limit))
    return problems


def domain_violations(frame: pd.DataFrame, spec: UseCaseSpec) -> dict[str, int]:
    """Per column, how many present values fall outside the spec's range or closed category set."""
    counts: dict[str, int] = {}
    for column in spec.input_columns:
        if column.name not in frame.columns:
            continue
        values = frame[column.name].dropna()
        bad = pd.Series(False, index=values.index)
        if column.type in {"numeric", "integer"} and len(values):
            numbers = values.astype("float64")
            if column.min is not None:
                bad |= numbers < column.min
            if column.max is not None:
                bad |= numbers > column.max
        if column.type == "categorical" and column.closed and column.categories:
            bad |= ~values.isin(column.categories)
        if int(bad.sum()):
            counts[column.name] = int(bad.sum())
    return counts
