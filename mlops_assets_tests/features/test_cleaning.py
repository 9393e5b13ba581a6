"""Each row-level cleaning rule, and the type enforcement that follows it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops_assets.features.cleaning import clean_frame
from mlops_assets.features.validation import validate_frame
from mlops_assets.specs import use_case_specs


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
