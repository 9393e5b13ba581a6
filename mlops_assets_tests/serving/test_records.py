"""Request shape and type checks, and the request schema generated from the spec."""

from __future__ import annotations

import math
from typing import Any

import pytest

from mlops_assets.serving.records import (
    column_structure_problems,
    columns_json_schema,
    columns_of,
    record_model,
    structure_problems,
    type_problems,
)
from mlops_assets.serving.routing import records_schema
from mlops_assets.specs import UseCaseSpec
from mlops_assets_tests.harness.records import record


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
