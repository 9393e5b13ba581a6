"""Domain checks of cleaned rows, and how their messages quote a client's value.

A message is echoed in a 422 answer: a value quoted whole would let a 10 MB string make a 10 MB
answer, so quotes are cut short and long category lists are capped.
"""

from __future__ import annotations

import pandas as pd
import pytest

from mlops_assets.features.cleaning import clean_frame
from mlops_assets.features.validation import categories_text, clip, column_problems, quote
from mlops_assets.specs import use_case_specs
from mlops_assets.specs.model import ColumnSpec


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Spaceport", "'Spaceport'"),
        ("x" * 80, repr("x" * 80)),
        ("x" * 81, repr("x" * 80) + "…(81 chars)"),
        ("é" * 10_000_000, repr("é" * 80) + "…(10000000 chars)"),
        (1.5, "1.5"),
    ],
    ids=["short", "at-limit", "over-limit", "10M", "float"],
)
def test_quote_cuts_long_values(value: object, expected: str) -> None:
    assert quote(value) == expected


def test_clip_cuts_text_and_says_how_long_it_was() -> None:
    assert clip("abc", 5) == "abc"
    assert clip("abcdefgh", 5) == "abcde…(8 chars)"


def test_categories_text_caps_the_list() -> None:
    short = ["Grocery Store", "Supermarket Type1"]
    assert categories_text(short) == str(short)  # unchanged for the usual short list
    many = [f"c{i}" for i in range(45)]
    assert categories_text(many) == str(many[:20])[:-1] + ", …] (45 values)"


def test_a_huge_category_value_is_quoted_short() -> None:
    spec = use_case_specs()["bigmart_sales"]
    huge = "Spaceport " * 1_000_000
    raw = {"Item_Identifier": "A", "Outlet_Identifier": "B", "Outlet_Type": huge}
    clean, _ = clean_frame(pd.DataFrame([raw]), spec)
    [found] = [p for p in column_problems(clean["Outlet_Type"], spec.column("Outlet_Type"))]
    assert len(found.message) < 300
    assert found.message.startswith("'Spaceport Spaceport")
    assert f"…({len(huge.strip())} chars) is not one of ['Grocery Store'," in found.message


def test_a_long_category_list_is_capped_in_messages() -> None:
    column = ColumnSpec(name="code", type="categorical", categories=[f"k{i}" for i in range(500)])
    [found] = column_problems(pd.Series(["nope"]), column)
    assert found.message == "'nope' is not one of " + categories_text(column.categories or [])
    assert len(found.message) < 300
