"""Each row-level cleaning rule, and the type enforcement that follows it."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlops_assets.features.cleaning import (
    _as_text,
    _fmt,
    _integer_column,
    clean_frame,
    is_plain_number,
    map_objects,
    number_from_text,
    read_categorical,
    read_integer,
    read_numeric,
    stripped,
)
from mlops_assets.features.validation import validate_frame
from mlops_assets.specs import use_case_specs
from mlops_assets.specs.model import ClipRule, ColumnSpec


@pytest.fixture(scope="module")
def spec():
    return use_case_specs()["bigmart_sales"]


def row(**overrides: object) -> dict:
    base = {
        "Item_Identifier": "FDA15",
        "Item_Weight": "9.3",
        "Item_Fat_Content": "Low Fat",
        "Item_Visibility": "0.016",
        "Item_Type": "Dairy",
        "Item_MRP": "249.8092",
        "Outlet_Identifier": "OUT049",
        "Outlet_Establishment_Year": "1999",
        "Outlet_Size": "Medium",
        "Outlet_Location_Type": "Tier 1",
        "Outlet_Type": "Supermarket Type1",
        "Item_Outlet_Sales": "3735.138",
    }
    base.update(overrides)
    return base


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("LF", "Low Fat"),
        ("low fat", "Low Fat"),
        ("reg", "Regular"),
        (" Regular ", "Regular"),
        ("LOW FAT", "Low Fat"),
        ("Low Fat", "Low Fat"),
    ],
)
def test_fat_content_spellings_are_canonical(spec, raw: str, expected: str) -> None:
    clean, report = clean_frame(pd.DataFrame([row(Item_Fat_Content=raw)]), spec)
    assert clean.loc[0, "Item_Fat_Content"] == expected


def test_remapped_values_are_counted(spec) -> None:
    frame = pd.DataFrame([row(Item_Fat_Content="LF"), row(Item_Fat_Content="reg"), row()])
    _, report = clean_frame(frame, spec)
    assert report.remapped_values == {"Item_Fat_Content": 2}


@pytest.mark.parametrize("zero", ["0", "0.0", 0, 0.0, "0.000"])
def test_zero_visibility_is_missing(spec, zero: object) -> None:
    clean, _ = clean_frame(pd.DataFrame([row(Item_Visibility=zero)]), spec)
    assert np.isnan(clean.loc[0, "Item_Visibility"])


def test_types_are_enforced(spec) -> None:
    clean, report = clean_frame(
        pd.DataFrame([row(), row(Item_MRP="abc", Outlet_Establishment_Year="1999.5")]), spec
    )
    assert clean["Item_MRP"].dtype == "float64"
    assert str(clean["Outlet_Establishment_Year"].dtype) == "Int64"
    assert clean.loc[0, "Outlet_Establishment_Year"] == 1999
    assert np.isnan(clean.loc[1, "Item_MRP"])
    assert pd.isna(clean.loc[1, "Outlet_Establishment_Year"])
    assert report.invalid_values == {"Item_MRP": 1, "Outlet_Establishment_Year": 1}


def test_infinity_is_not_a_number(spec) -> None:
    clean, report = clean_frame(pd.DataFrame([row(Item_MRP="inf")]), spec)
    assert np.isnan(clean.loc[0, "Item_MRP"])
    assert report.invalid_values == {"Item_MRP": 1}


def test_strip_and_empty_text_is_missing(spec) -> None:
    clean, _ = clean_frame(pd.DataFrame([row(Outlet_Size="  ", Item_Type=" Dairy ")]), spec)
    assert pd.isna(clean.loc[0, "Outlet_Size"])
    assert clean.loc[0, "Item_Type"] == "Dairy"


def test_missing_columns_are_reported_and_filled(spec) -> None:
    frame = pd.DataFrame([row()]).drop(columns=["Outlet_Size", "Item_Outlet_Sales"])
    clean, report = clean_frame(frame, spec)
    assert report.missing_columns == ["Outlet_Size"]
    assert pd.isna(clean.loc[0, "Outlet_Size"])
    assert "Item_Outlet_Sales" not in clean.columns  # an unlabelled batch stays unlabelled


def test_headers_with_bom_and_spaces(spec) -> None:
    frame = pd.DataFrame([row()]).rename(
        columns={"Item_Identifier": "\ufeffItem_Identifier", "Item_MRP": " Item_MRP "}
    )
    clean, report = clean_frame(frame, spec)
    assert clean.loc[0, "Item_Identifier"] == "FDA15"
    assert clean.loc[0, "Item_MRP"] == pytest.approx(249.8092)
    assert report.missing_columns == []


def test_rows_without_ids_or_inputs_are_dropped(spec) -> None:
    empty = {k: None for k in row()}
    frame = pd.DataFrame([row(), row(Item_Identifier=None), empty])
    clean, report = clean_frame(frame, spec)
    assert (report.rows_in, report.rows_out) == (3, 1)


def test_unexpected_columns_are_reported(spec) -> None:
    _, report = clean_frame(pd.DataFrame([row(Comment="hello")]), spec)
    assert report.unexpected_columns == ["Comment"]


def test_validation_names_field_and_problem(spec) -> None:
    clean, _ = clean_frame(
        pd.DataFrame([row(), row(Outlet_Type="Spaceport", Item_Visibility="1.5", Item_MRP=None)]),
        spec,
    )
    problems = [str(p) for p in validate_frame(clean, spec)]
    assert "records[1].Item_Visibility: 1.5 is above 1.0" in problems
    assert "records[1].Item_MRP: is required" in problems
    assert any(p.startswith("records[1].Outlet_Type: 'Spaceport' is not one of") for p in problems)
    assert not [p for p in problems if p.startswith("records[0]")]


def test_open_category_accepts_new_values(spec) -> None:
    clean, _ = clean_frame(pd.DataFrame([row(Item_Type="Pet Food")]), spec)
    assert validate_frame(clean, spec) == []


# ---------------------------------------------------------------- hostile values

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)


@pytest.mark.parametrize(
    "value",
    [
        1e19,
        -1e19,
        "1e19",
        "1e+19",
        2.0**63,  # float64 has no 2**63 - 1: the nearest float is already out of range
        2**63,
        INT64_MIN - 1,
        "9223372036854775808",
        " -9223372036854775809 ",
        1e300,
        "1" * 400,
        pytest.param(10**400, id="10**400"),
        pytest.param(10**5000, id="10**5000"),  # too long for str() (int_max_str_digits)
    ],
)
def test_whole_numbers_beyond_int64_are_unreadable_integers(spec, value: object) -> None:
    """Such a value used to raise ``cannot safely cast non-equivalent float64 to int64``."""
    frame = pd.DataFrame([row(), row(Outlet_Establishment_Year=value)])
    clean, report = clean_frame(frame, spec)
    assert clean.loc[0, "Outlet_Establishment_Year"] == 1999
    assert pd.isna(clean.loc[1, "Outlet_Establishment_Year"])
    assert report.invalid_values == {"Outlet_Establishment_Year": 1}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (INT64_MAX, INT64_MAX),
        (INT64_MIN, INT64_MIN),
        (-(2.0**63), INT64_MIN),
        ("9223372036854775807", INT64_MAX),
        (" -9223372036854775808 ", INT64_MIN),
        ("9.2e18", 9_200_000_000_000_000_000),
        (2**53 + 1, 2**53 + 1),  # float64 would read 2**53
        ("9007199254740993", 2**53 + 1),
    ],
)
def test_integers_up_to_the_int64_edges_are_read_exactly(spec, value: object, expected: int):
    frame = pd.DataFrame([row(), row(Outlet_Establishment_Year=value)])
    clean, report = clean_frame(frame, spec)
    assert clean.loc[1, "Outlet_Establishment_Year"] == expected
    assert report.invalid_values == {}


def test_clip_of_an_integer_column_rounds_its_bounds_inward() -> None:
    """pandas refuses a fractional bound for an Int64 column; 0.5 to 4.5 clips to 1 to 4."""
    column = ColumnSpec(name="n", type="integer", cleaning=[ClipRule(min=0.5, max=4.5)])
    spec = use_case_specs()["bigmart_sales"].model_copy(
        update={"id_columns": [], "features": [column]}
    )
    clean, report = clean_frame(pd.DataFrame({"n": ["0", "3", "9", "1e19"]}), spec)
    assert clean["n"].tolist() == [1, 3, 4]  # the row with nothing readable left is dropped
    assert report.invalid_values == {"n": 1}


HOSTILE_VALUES: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([INT64_MAX, INT64_MAX + 1, INT64_MIN, INT64_MIN - 1, 10**400]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["nan", "inf", "-Infinity", "1e999", "1e19", " 9223372036854775808 ", "", " "]),
    st.sampled_from(["2025-13-45", "0000-00-00", "99999-01-01", "1e19", "NaT", "today"]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)


SPECS = use_case_specs()


@pytest.mark.parametrize("use_case", sorted(SPECS))
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_cleaning_never_raises(use_case: str, data: st.DataObject) -> None:
    """Any value in any column (as a served request or a landed file brings it) is cleaned."""
    spec = SPECS[use_case]
    names = [c.name for c in spec.input_columns] + [spec.target.name]
    rows = data.draw(
        st.lists(st.fixed_dictionaries({n: HOSTILE_VALUES for n in names}), max_size=4)
    )
    frame = pd.DataFrame(rows, columns=names, dtype=object)
    clean, report = clean_frame(frame, spec)
    assert report.rows_in == len(frame) and len(clean) == report.rows_out <= len(frame)
    validate_frame(clean, spec)


# Exponents pandas' parser overflows (a C int): the 10-digit one read as 1.0, the 40-digit one
# crashed the process. Found by schemathesis against the service (the worker died and
# restarted, dropping every request in flight). Checked in a subprocess: a crash fails the test,
# not the test session.
HUGE_EXPONENTS = [
    ("1e4294967296", False),
    (".15222205284007e2952672652437698439760881281649211307275", False),
    ("-1e2952672652437698439760881281649211307275", False),
    ("7e-2952672652437698439760881281649211307275", True),  # 0.0: a number
    ("1e-99999", True),
]
LONG_EXPONENT_PROGRAM = """
import json, sys
import pandas as pd
from mlops_assets.features.cleaning import clean_frame, text_to_numbers
from mlops_assets.serving.records import columns_of, type_problems
from mlops_assets.specs import use_case_specs
from mlops_assets_tests.harness.records import record

spec = use_case_specs()["bigmart_sales"]
texts = json.loads(sys.argv[1])
numbers = text_to_numbers(pd.Series(texts, dtype=object)).tolist()
rows = [record(Item_MRP=t, Outlet_Establishment_Year=t) for t in texts]
clean, report = clean_frame(pd.DataFrame(rows).astype(str), spec)
problems = type_problems(columns_of(rows, spec), spec)
print(json.dumps({"numbers": numbers, "invalid": report.invalid_values,
                  "problems": sorted({p.row for p in problems})}))
"""


def test_numbers_with_huge_exponents_are_read_safely() -> None:
    import json
    import subprocess
    import sys
    from pathlib import Path

    texts = [text for text, _ in HUGE_EXPONENTS]
    done = subprocess.run(
        [sys.executable, "-c", LONG_EXPONENT_PROGRAM, json.dumps(texts)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]  # -11 (SIGSEGV) before the fix
    found = json.loads(done.stdout.strip().splitlines()[-1])
    numbers = found["numbers"]
    assert numbers[0] == float("inf") and numbers[1] == float("inf")  # not 1.0
    assert numbers[2] == float("-inf") and numbers[3] == 0.0 and numbers[4] == 0.0
    unreadable = sum(1 for _, readable in HUGE_EXPONENTS if not readable)
    assert found["invalid"]["Item_MRP"] == unreadable
    assert found["problems"] == [i for i, (_, ok) in enumerate(HUGE_EXPONENTS) if not ok]


# ---------------------------------------------------------------- one number reader


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("96.020681740671154", 96.02068174067115),  # pd.to_numeric: 96.02068174067117
        ("0.9504636963259353", 0.9504636963259353),
        (" 12 ", 12.0),
        ("+.5", 0.5),
        ("1.", 1.0),
        ("1E5", 1e5),
        ("-0", -0.0),
        ("iNfInItY", math.inf),
        ("-inf", -math.inf),
    ],
)
def test_numeric_text_is_read_correctly_rounded(text: str, expected: float) -> None:
    number = number_from_text(text)
    assert number == expected and math.copysign(1, number) == math.copysign(1, expected)


@pytest.mark.parametrize("text", ["1_000", "١٢", "0x10", " inf", "nan", "1e999", "1,5", ".", ""])
def test_text_pandas_does_not_read_as_a_number_is_not_one(text: str) -> None:
    assert math.isnan(number_from_text(text))


def test_a_value_reads_the_same_whatever_its_column_holds(spec) -> None:
    """``pd.to_numeric`` reads "-0" as 0 among whole numbers and as -0.0 beside a fraction."""
    alone = clean_frame(pd.DataFrame([row(Item_MRP="-0"), row(Item_MRP="7")]), spec)[0]
    mixed = clean_frame(pd.DataFrame([row(Item_MRP="-0"), row(Item_MRP="7.5")]), spec)[0]
    alone, mixed = alone["Item_MRP"], mixed["Item_MRP"]
    assert math.copysign(1, alone[0]) == math.copysign(1, mixed[0]) == -1


def test_numbers_are_read_as_their_text_reads() -> None:
    """A number skips its text only where that changes nothing (a float's repr round-trips)."""
    for value in [0.1, 1e16, 2.0**70, -0.0, 5e-324, 2**63 - 1, 10**20]:
        assert read_numeric(value) == number_from_text(_fmt(value))
        assert math.copysign(1, read_numeric(value)) == math.copysign(
            1, number_from_text(_fmt(value))
        )
    assert read_numeric(10**400) is None and read_numeric(math.inf) is None
    assert read_integer(2**63 - 1) == 2**63 - 1 and read_integer(2**63) is None
    assert read_integer(9.223372036854776e18) is None and read_integer("9223372036854775807")


VALUES = st.one_of(
    st.none(),
    st.just(math.nan),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(alphabet=" \tabLF0.5-é", max_size=6),
    st.sampled_from([np.str_(" x "), np.float64(2.5), np.int64(3), pd.NA]),
)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(VALUES, max_size=12), st.booleans())
def test_column_fast_paths_equal_the_value_forms_mapped(values: list, keep_numbers: bool) -> None:
    """Text as it is, strip and categorical reading over a column: the value forms, mapped."""
    series = pd.Series(values, dtype=object)

    def as_text(value: Any) -> Any:
        if isinstance(value, str) or (keep_numbers and is_plain_number(value)):
            return value
        return _fmt(value)

    def same(left: pd.Series, right: pd.Series) -> None:
        assert [repr(v) for v in left.tolist()] == [repr(v) for v in right.tolist()]

    def mapped(column: pd.Series, function: Any) -> pd.Series:
        """The value form applied one value at a time (no fast path), missing values kept."""
        return pd.Series([v if pd.isna(v) else function(v) for v in column.tolist()], dtype=object)

    def strip(value: Any) -> Any:
        return value.strip() or None if isinstance(value, str) else value

    same(_as_text(series, keep_numbers), mapped(series, as_text))
    text = mapped(series, as_text)
    same(map_objects(text, strip), mapped(text, strip))  # once per distinct text, or per value
    same(stripped(text), mapped(text, strip))
    same(stripped(text), mapped(text, read_categorical))
    repeated = pd.Series(text.tolist() * 3, dtype=object)  # equal texts: one call, one result
    same(stripped(repeated), mapped(repeated, strip))
    same(
        _integer_column(series).astype(object),
        pd.Series(
            [pd.NA if pd.isna(v) or read_integer(v) is None else read_integer(v) for v in values],
            dtype=object,
        ),
    )


@pytest.mark.parametrize(
    "values",
    [[3, 1990, None, 7], [INT64_MAX, INT64_MIN, 0], [INT64_MAX + 1, 5], [True, 2], [2.0, 3]],
)
def test_an_integer_column_reads_as_its_values_do(values: list) -> None:
    """Plain int64 ints are taken at once; anything else is read value by value, the same."""
    read = _integer_column(pd.Series(values, dtype=object)).astype(object).tolist()
    assert read == [
        pd.NA if v is None or read_integer(v) is None else read_integer(v) for v in values
    ]
