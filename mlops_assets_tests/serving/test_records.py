"""Request shape and type checks, and the request schema generated from the spec."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlops_assets.serving.records import (
    column_structure_problems,
    columns_json_schema,
    columns_of,
    example_record,
    record_model,
    structure_problems,
    type_problems,
)
from mlops_assets.serving.routing import records_schema
from mlops_assets.serving.scoring import Scorer
from mlops_assets.specs import UseCaseSpec, use_case_specs
from mlops_assets.specs.model import ClipRule, ColumnSpec, NullIfRule
from mlops_assets_tests.harness.records import landed_records, record, records

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
YEAR = "Outlet_Establishment_Year"


def test_valid_records_have_no_problems(spec: UseCaseSpec) -> None:
    records = [record(), record(Item_Weight=None, Item_MRP="12.5", Outlet_Size=None)]
    assert structure_problems(records, spec) == []
    assert type_problems(columns_of(records, spec), spec) == []


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        ([], "records: is empty"),
        ("nope", "records: expected a list of records, got string 'nope'"),
        ([record()] * 4, "records: has 4 records; at most 3 per request"),
        ([record(), 7], "records[1]: expected an object, got number 7"),
        ([record(Item_MRP=...)], "records[0].Item_MRP: is missing"),
        ([record(Colour="red")], "records[0].Colour: unknown field"),
    ],
)
def test_shape_problems_name_the_field(spec: UseCaseSpec, records: Any, expected: str) -> None:
    problems = structure_problems(records, spec, max_records=3)
    assert problems and str(problems[0]).startswith(expected)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("Item_MRP", "abc", "expected a number, got string 'abc'"),
        ("Item_MRP", True, "expected a number, got boolean true"),
        ("Item_MRP", [1], "expected a number, got an array"),
        ("Item_MRP", {"v": 1}, "expected a number, got an object"),
        ("Item_MRP", "", "expected a number or null, got ''"),
        ("Item_Weight", math.nan, "must be a finite number, got nan"),
        ("Item_Weight", math.inf, "must be a finite number, got inf"),
        ("Item_Weight", "-inf", "must be a finite number, got -inf"),
        ("Outlet_Establishment_Year", 1999.5, "expected a whole number, got 1999.5"),
        ("Outlet_Type", 3, "expected a string, got number 3"),
        ("Item_Identifier", False, "expected a string, got boolean false"),
    ],
)
def test_wrong_types_name_the_field(spec: UseCaseSpec, field: str, value: Any, expected: str):
    records = [record(), record(**{field: value})]
    problems = type_problems(columns_of(records, spec), spec)
    assert [str(p) for p in problems] == [f"records[1].{field}: {expected}"]


def test_numbers_as_text_and_whole_floats_are_accepted(spec: UseCaseSpec) -> None:
    records = [record(Item_MRP=" 249.8 ", Outlet_Establishment_Year="1999", Item_Weight=9)]
    records.append(record(Outlet_Establishment_Year=1999.0, Item_Visibility="0"))
    assert type_problems(columns_of(records, spec), spec) == []


def test_every_bad_value_of_a_large_batch_is_found(spec: UseCaseSpec) -> None:
    records = [record() for _ in range(5000)]
    for row in (10, 4000, 4999):
        records[row]["Item_MRP"] = "n/a"
    problems = type_problems(columns_of(records, spec), spec)
    assert [p.row for p in problems] == [10, 4000, 4999]


def test_record_model_matches_the_spec(spec: UseCaseSpec) -> None:
    model = record_model(spec)
    schema = model.model_json_schema()
    assert list(schema["properties"]) == [c.name for c in spec.input_columns]
    assert set(schema["required"]) == set(schema["properties"])
    assert schema["additionalProperties"] is False
    outlet_type = schema["properties"]["Outlet_Type"]
    assert "Supermarket Type1" in str(outlet_type) and "null" in str(outlet_type)
    assert model.model_validate(record(Item_Fat_Content="Low Fat", Item_Visibility=0.1))


def test_records_schema_bounds_the_batch(spec: UseCaseSpec) -> None:
    schema = records_schema(spec, max_records=250)
    assert (schema["minItems"], schema["maxItems"]) == (1, 250)
    assert schema["items"]["properties"]["Item_MRP"]["maximum"] == 1000


def test_the_fast_path_still_catches_nan_next_to_nulls(spec: UseCaseSpec) -> None:
    """NumPy reads null as NaN: a real NaN among nulls must still be reported."""
    records = [record(Item_Weight=None), record(Item_Weight=math.nan), record(Item_Weight=3)]
    problems = type_problems(columns_of(records, spec), spec)
    assert [str(p) for p in problems] == [
        "records[1].Item_Weight: must be a finite number, got nan"
    ]


def test_integers_beyond_float_range_are_reported(spec: UseCaseSpec) -> None:
    problems = type_problems(columns_of([record(Item_MRP=10**400)], spec), spec)
    assert len(problems) == 1 and "records[0].Item_MRP: is out of range" in str(problems[0])


def test_columnar_shape_problems(spec: UseCaseSpec) -> None:
    columns = {c.name: [record()[c.name]] for c in spec.input_columns}
    assert column_structure_problems(columns, spec) == []
    assert str(column_structure_problems([], spec)[0]) == (
        "columns: expected an object of columns, got an array"
    )
    too_many = {name: values * 4 for name, values in columns.items()}
    assert "at most 3" in str(column_structure_problems(too_many, spec, max_records=3)[0])
    empty = {name: [] for name in columns}
    assert str(column_structure_problems(empty, spec)[0]).startswith("columns: are empty")
    schema = columns_json_schema(spec, 50)
    assert schema["properties"]["Item_MRP"]["maxItems"] == 50
    assert set(schema["required"]) == set(columns)


# ---------------------------------------------------------------- integers beyond int64


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (1e19, "1e+19"),
        (-1e19, "-1e+19"),
        (2.0**63, "9.223372036854776e+18"),
        (2**63, "9223372036854775808"),
        (INT64_MIN - 1, "-9223372036854775809"),
        (2**70, "1180591620717411303424"),
        pytest.param(10**400, "1e+400", id="10**400"),
        ("1e19", "'1e19'"),
        ("9223372036854775808", "'9223372036854775808'"),
        (" -9223372036854775809 ", "' -9223372036854775809 '"),
    ],
)
def test_integers_beyond_int64_are_out_of_range(spec: UseCaseSpec, value: Any, shown: str):
    """``1e19`` passed these checks and then crashed cleaning; now it names the field."""
    problems = type_problems(columns_of([record(), record(**{YEAR: value})], spec), spec)
    assert [str(p) for p in problems] == [
        f"records[1].{YEAR}: is out of range for an integer: {shown}"
    ]


@pytest.mark.parametrize(
    "value",
    [INT64_MAX, INT64_MIN, -(2.0**63), 2.0**62, "9223372036854775807", " -9223372036854775808"],
)
def test_integers_at_the_int64_edges_are_whole_numbers(spec: UseCaseSpec, value: Any) -> None:
    assert type_problems(columns_of([record(**{YEAR: value})], spec), spec) == []


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("Item_Weight", "nan", "must be a finite number, got string 'nan'"),
        ("Item_Weight", " NaN ", "must be a finite number, got string ' NaN '"),
        ("Item_Weight", "1e999", "must be a finite number, got string '1e999'"),
        ("Item_Weight", "-1e999", "must be a finite number, got string '-1e999'"),
        ("Item_Weight", "Infinity", "must be a finite number, got inf"),
        (YEAR, "inf", "must be a finite number, got inf"),
        (YEAR, "nan", "must be a finite number, got string 'nan'"),
        (YEAR, "1e999", "must be a finite number, got string '1e999'"),
        (YEAR, "9007199254740993.5", "expected a whole number, got '9007199254740993.5'"),
        pytest.param("Item_MRP", 10**400, "is out of range for a number: 1e+400", id="10**400"),
    ],
)
def test_non_finite_numbers_as_text_are_named(spec: UseCaseSpec, field: str, value, expected):
    problems = type_problems(columns_of([record(), record(**{field: value})], spec), spec)
    assert [str(p) for p in problems] == [f"records[1].{field}: {expected}"]


@pytest.mark.parametrize(
    "value", [1e19, 2**63, INT64_MIN - 1, "1e19", pytest.param(10**400, id="10**400")]
)
def test_the_scorer_reports_out_of_range_integers_on_their_field(spec, value) -> None:
    columns = columns_of([record(), record(**{YEAR: value})], spec)
    problems = Scorer(spec, None, "bigmart_sales", "1").check(columns)
    [found] = problems  # the first record is valid
    assert found.location == f"records[1].{YEAR}"
    assert found.message.startswith("is out of range for an integer: ")


INT64_EDGES = st.sampled_from([INT64_MAX, INT64_MAX + 1, INT64_MIN, INT64_MIN - 1])
INTEGERS = st.one_of(st.integers(min_value=-(2**70), max_value=2**70), INT64_EDGES)
YEARS = st.one_of(
    INTEGERS,
    st.integers(1900, 2100),
    INTEGERS.map(float),
    INTEGERS.map(str),
    INTEGERS.map(lambda n: f" {n:e} "),
    st.sampled_from([10**400, -(10**400), "nan", "inf", "-inf", "1e999", "NaN", "1e19"]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.none(),
    st.text(max_size=6),
)


def _beyond_int64(value: Any) -> bool:
    """Whether a value the client sent is a whole number outside int64 (as the service reads)."""
    from decimal import Decimal, InvalidOperation

    if isinstance(value, bool) or value is None:
        return False
    try:
        number = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    except (InvalidOperation, ValueError):
        return False
    return (
        number.is_finite()
        and number == number.to_integral_value()
        and (not INT64_MIN <= number <= INT64_MAX)
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(YEARS, min_size=1, max_size=5))
def test_property_any_integer_gets_an_answer_naming_its_field(spec: UseCaseSpec, years) -> None:
    """Integers up to and past the int64 edges: no exception escapes the request path, and a
    whole number outside int64 is a problem of its field (in the checks and in the scorer)."""
    records = [record(**{YEAR: year}) for year in years]
    assert structure_problems(records, spec) == []
    columns = columns_of(records, spec)
    typed = {p.location: p for p in type_problems(columns, spec)}
    checked = {p.location: p for p in Scorer(spec, None, "bigmart_sales", "1").check(columns)}
    assert all(len(p.message) < 300 for p in checked.values())
    for row, year in enumerate(years):
        location = f"records[{row}].{YEAR}"
        if _beyond_int64(year):
            # beyond float range ("1e999") it is first of all not a finite number
            assert re.match("is out of range for an|must be a finite", typed[location].message)
            assert checked[location] == typed[location]
        elif isinstance(year, int) and 1900 <= year <= 2100:
            assert location not in checked


# ---------------------------------------------------------------- 422 answers stay small

HUGE = "9" * 3 + "x" * 10_000_000


@pytest.mark.parametrize(
    ("field", "value", "start"),
    [
        ("Item_MRP", HUGE, "expected a number, got string '999xxx"),
        ("Outlet_Type", 10**400, "expected a string, got number 1e+400"),
        (YEAR, " 9" + "0" * 300, "is out of range for an integer: ' 9000"),
    ],
    ids=["number", "string", "integer"],
)
def test_problems_quote_huge_values_short(spec: UseCaseSpec, field: str, value, start) -> None:
    problems = type_problems(columns_of([record(**{field: value})], spec), spec)
    [found] = problems
    assert found.message.startswith(start) and len(str(found)) < 300


def test_a_huge_date_is_quoted_short() -> None:
    from mlops_assets.specs import use_case_specs

    m5 = use_case_specs()["m5_sales"]
    columns = {c.name: [None] for c in m5.input_columns}
    columns["date"] = ["2025-" + "1" * 1_000_000]
    [found] = type_problems(columns, m5)
    assert found.message.startswith("is longer than 1000 characters: '2025-111")
    assert len(found.message) < 300
    assert found.message.endswith("…(1000005 chars)")


def test_huge_unknown_field_names_are_cut(spec: UseCaseSpec) -> None:
    name = "Colour" * 1_000_000
    [found] = structure_problems([record(**{name: "red"})], spec)
    assert found.location.startswith("records[0].ColourColour") and len(str(found)) < 600
    [column] = column_structure_problems({**columns_of([record()], spec), name: [1]}, spec)
    assert column.location.startswith("columns.Colour") and len(str(column)) < 600


@pytest.mark.parametrize("field", ["Item_Type", "Item_Identifier", "Outlet_Type"])
def test_text_longer_than_the_limit_is_refused(spec: UseCaseSpec, field: str) -> None:
    """An open category or an id of 10 MB used to be scored and logged whole."""
    from mlops_assets.serving.records import MAX_TEXT_CHARS

    problems = type_problems(columns_of([record(**{field: "x" * 10_000_000})], spec), spec)
    [found] = problems
    assert found.location == f"records[0].{field}" and len(str(found)) < 300
    assert found.message.startswith(f"is longer than {MAX_TEXT_CHARS} characters")
    assert type_problems(columns_of([record(**{field: "x" * MAX_TEXT_CHARS})], spec), spec) == []
    schema = record_model(spec).model_json_schema()["properties"][field]
    assert schema["maxLength"] == MAX_TEXT_CHARS


def test_the_scorer_answers_a_huge_category_briefly(spec: UseCaseSpec) -> None:
    columns = columns_of([record(Outlet_Type="Spaceport" * 1_000_000)], spec)
    [found] = Scorer(spec, None, "bigmart_sales", "1").check(columns)
    assert found.location == "records[0].Outlet_Type" and len(found.message) < 300


# ---------------------------------------------------------------- the schema documents raw input

SPECS = use_case_specs()
VIEWS = {
    str(view.segment or view.name): view
    for spec in SPECS.values()
    for view in (spec.segment_specs() if spec.segments else [spec])
}


def record_validator(spec: UseCaseSpec) -> Any:
    """A JSON-schema validator of one record, from the schema the OpenAPI page shows."""
    import jsonschema

    schema = records_schema(spec, 10_000)["items"]
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def accepted(spec: UseCaseSpec, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records the service accepts (no problem at all in its checks)."""
    if structure_problems(rows, spec, max_records=len(rows)):
        return []
    columns = columns_of(rows, spec)
    bad = {p.row for p in Scorer(spec, None, spec.name, "1").check(columns)}
    return [r for i, r in enumerate(rows) if i not in bad]


def schema_errors(spec: UseCaseSpec, rows: list[dict[str, Any]]) -> list[str]:
    validator = record_validator(spec)
    return [f"{r}: {e.message}" for r in rows for e in validator.iter_errors(r)][:5]


ACCEPTED_BIGMART = [
    record(),
    record(Item_Weight=None, Item_MRP="12.5", Outlet_Size=None),
    record(Item_MRP=" 249.8 ", Outlet_Establishment_Year="1999", Item_Weight=9),
    record(Outlet_Establishment_Year=1999.0, Item_Visibility="0"),
    record(Item_Fat_Content="Low Fat", Item_Visibility=0.1),
    record(Item_Fat_Content=" low FAT ", Outlet_Size=" Medium ", Outlet_Type="Grocery Store "),
    record(Item_Fat_Content="reg", Outlet_Establishment_Year="1.999e3", Item_Type="Pet Food"),
    record(Item_Fat_Content="", Outlet_Size="  ", Item_Weight=None, Item_Visibility=None),
    record(Item_Visibility=0.0, Item_MRP=0, Outlet_Establishment_Year=" 2100 "),
]


def test_accepted_bigmart_records_match_the_schema(spec: UseCaseSpec) -> None:
    """Raw spellings the service cleans (``LF``, `` Medium ``, ``"249.8"``) are documented."""
    service_accepts = accepted(spec, ACCEPTED_BIGMART)
    assert len(service_accepts) == len(ACCEPTED_BIGMART)
    assert schema_errors(spec, service_accepts) == []


def test_accepted_landed_rows_match_the_schema(spec: UseCaseSpec, landed_rows) -> None:
    """Every generated row the service accepts, as CSV text and as typed JSON values."""
    names = [c.name for c in spec.input_columns]
    for rows in (landed_records(landed_rows, spec), records(landed_rows, names)):
        service_accepts = accepted(spec, rows)
        assert len(service_accepts) > len(rows) / 2
        assert schema_errors(spec, service_accepts) == []


@pytest.mark.parametrize("name", sorted(VIEWS))
def test_every_use_case_accepted_rows_match_its_schema(name: str) -> None:
    import datetime as dt

    from mlops_assets.generators import get_generator

    view = VIEWS[name]
    rows = get_generator(view.generator or view.name).generate(60, dt.date(2025, 3, 1), seed=5)
    names = [c.name for c in view.input_columns if c.name in rows.columns]
    if len(names) < len(view.input_columns):
        pytest.skip(f"the generator does not make every column of {name}")
    for body in (landed_records(rows, view), records(rows, names)):
        service_accepts = accepted(view, body)
        assert service_accepts and schema_errors(view, service_accepts) == []


@pytest.mark.parametrize("name", sorted(VIEWS))
def test_the_example_is_documented_valid_and_accepted(name: str) -> None:
    view = VIEWS[name]
    example = example_record(view)
    assert list(example) == [c.name for c in view.input_columns]
    schema = record_model(view).model_json_schema()
    assert schema["examples"] == [example]
    assert schema_errors(view, [example]) == []
    assert accepted(view, [example]) == [example]


def test_the_example_is_a_realistic_record(spec: UseCaseSpec) -> None:
    """The example used to be every range's maximum (``Item_MRP`` 1000, year 2100), then its
    middle (500, 2000): a generated row the service accepts is what a client really sends."""
    example = example_record(spec)
    assert re.fullmatch(r"[A-Z]{3}\d{2}", example["Item_Identifier"])
    assert re.fullmatch(r"OUT\d{3}", example["Outlet_Identifier"])
    assert 30 < example["Item_MRP"] < 270 and 1985 <= example["Outlet_Establishment_Year"] <= 2009
    assert 0 < example["Item_Visibility"] < 0.35


def test_without_a_generator_the_example_is_plausible(spec: UseCaseSpec) -> None:
    example = example_record(spec.model_copy(update={"generator": None}))
    assert example["Item_MRP"] == 500  # the middle of 0 to 1000, not the maximum
    assert example["Outlet_Establishment_Year"] == 2000
    assert example["Item_Fat_Content"] == "Low Fat" and example["Outlet_Type"] == "Grocery Store"
    assert isinstance(example["Item_Identifier"], str) and example["Item_Identifier"]
    assert example["Item_Visibility"] not in (0, None)  # 0 is the column's missing sentinel


def test_the_schema_lists_mapped_spellings_and_requires_ids(spec: UseCaseSpec) -> None:
    properties = record_model(spec).model_json_schema()["properties"]
    fat = properties["Item_Fat_Content"]
    assert "enum" not in fat and "string" in fat["type"]
    assert {"Low Fat", "Regular", "LF", "low fat", "reg"} <= set(fat["examples"])
    assert "LF" in fat["description"] and "case" in fat["description"]
    assert properties["Item_Identifier"]["minLength"] == 1
    assert "null" not in properties["Item_Identifier"]["type"]
    assert set(properties["Item_MRP"]["type"]) == {"number", "string"}  # required: no null
    year = properties[YEAR]
    assert set(year["type"]) == {"integer", "string", "null"}
    assert (year["minimum"], year["maximum"]) == (1900, 2100)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("Outlet_Type", "Spaceport"),
        ("Outlet_Type", 3),
        ("Item_MRP", 2000),
        ("Item_MRP", None),
        ("Item_MRP", "abc"),
        ("Item_MRP", ""),
        ("Item_Identifier", ""),
        ("Item_Identifier", "   "),
        (YEAR, 1999.5),
        (YEAR, 1e19),
        ("Item_Fat_Content", 1),
    ],
)
def test_the_schema_still_rejects_what_the_service_rejects(spec, field: str, value: Any) -> None:
    bad = record(**{field: value})
    assert accepted(spec, [bad]) == []
    assert schema_errors(spec, [bad])


def _custom_spec(column: ColumnSpec) -> UseCaseSpec:
    base = SPECS["bigmart_sales"]
    return base.model_copy(update={"features": [*base.features[:-1], column]})


@pytest.mark.parametrize(
    ("column", "values"),
    [
        (
            ColumnSpec(
                name="Outlet_Type",
                type="numeric",
                min=0,
                max=10,
                cleaning=[ClipRule(min=0, max=10)],
            ),
            [-5, 50, "1e6", 5],
        ),
        (
            ColumnSpec(
                name="Outlet_Type", type="numeric", min=0, max=10, cleaning=[ClipRule(min=0)]
            ),
            [-50, "-50", 3],
        ),
        (
            ColumnSpec(
                name="Outlet_Type", type="integer", min=1, max=9, cleaning=[ClipRule(max=9)]
            ),
            [1, 10**9, "120"],
        ),
        (
            ColumnSpec(
                name="Outlet_Type",
                type="numeric",
                min=0,
                max=10,
                cleaning=[NullIfRule(values=[-1, 99, "n/a"])],
            ),
            [-1, 99, -1.0, 5],
        ),
    ],
    ids=["clip-both", "clip-min", "clip-max-integer", "null-if"],
)
def test_clip_and_sentinel_values_are_not_forbidden(column: ColumnSpec, values: list) -> None:
    """A clipped value is clipped, a sentinel becomes missing: the service accepts both."""
    view = _custom_spec(column)
    rows = [record(Outlet_Type=value) for value in values]
    assert accepted(view, rows) == rows
    assert schema_errors(view, rows) == []


NUMBER_TEXT = st.one_of(
    st.text(alphabet="0123456789+-.eE \t", max_size=10),
    st.floats(allow_nan=False, allow_infinity=False).map(str),
    st.integers(-(10**20), 10**20).map(lambda n: f" {n} "),
)
SPELLINGS = st.sampled_from(
    ["Low Fat", "Regular", "LF", "lf", "low fat", "LOW FAT", "reg", "REG", "Reg", "regular", ""]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.fixed_dictionaries(
        {
            "Item_MRP": st.one_of(NUMBER_TEXT, st.floats(-10, 1010), st.integers(-5, 1005)),
            "Item_Weight": st.one_of(st.none(), NUMBER_TEXT, st.floats(0, 60)),
            YEAR: st.one_of(NUMBER_TEXT, st.floats(1890, 2110), st.integers(1890, 2110)),
            "Item_Fat_Content": st.tuples(SPELLINGS, st.sampled_from(["", " ", "\t"])).map(
                lambda t: t[1] + t[0] + t[1]
            ),
            "Outlet_Size": st.sampled_from(["Small", " Medium", "High ", "high", "", None]),
        }
    )
)
def test_property_what_the_service_accepts_the_schema_allows(spec: UseCaseSpec, changes) -> None:
    row = record(**changes)
    if accepted(spec, [row]):
        assert schema_errors(spec, [row]) == []


def test_a_column_problem_names_its_record_and_field() -> None:
    """``detail`` of a columnar 422 said ``field: "Item_Weight[0]"`` (schemathesis saw it)."""
    from mlops_assets.serving.records import RequestProblem, as_column_location

    found = as_column_location(RequestProblem(3, 0, "records[3].Item_Weight", "is below 0.5"))
    assert found.location == "columns.Item_Weight[3]"
    assert found.as_dict() == {"record": 3, "field": "Item_Weight", "message": "is below 0.5"}
