"""Hand-written files in each real source's dialect ingest cleanly.

The fixtures are byte-exact copies of what the real files look like (``fixtures/.gitattributes``
keeps git from normalising them): the loan file with a byte-order mark, Windows line ends and
spaces around header names and values; the mushroom file ``;``-separated with empty fields; the
obesity file with survey integers, SMOTE decimals and a duplicate row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_assets.features.cleaning import clean_frame
from mlops_assets.features.quality import clean_checks, raw_checks
from mlops_assets.features.validation import validate_frame
from mlops_assets.ingest.readers import read_landed_file, sniff_delimiter
from mlops_assets.specs import use_case_specs

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FILES = {
    "loan_approval": "loan_approval_quirky.csv",
    "mushroom": "mushroom_secondary.csv",
    "obesity": "obesity.csv",
}


@pytest.fixture(scope="module")
def specs():
    return use_case_specs()


def ingest(uc: str, specs) -> tuple[pd.DataFrame, pd.DataFrame, object]:
    path = FIXTURES / FILES[uc]
    raw = read_landed_file(path.name, path.read_bytes())
    clean, report = clean_frame(raw, specs[uc])
    return raw, clean, report


@pytest.mark.parametrize("uc", sorted(FILES))
def test_fixture_passes_every_check(specs, uc) -> None:
    spec = specs[uc]
    raw, clean, report = ingest(uc, specs)
    assert all(o.passed for o in raw_checks(raw, spec))
    assert report.rows_out == report.rows_in == len(raw) >= 10
    assert not report.invalid_values and not report.missing_columns
    assert not report.unexpected_columns
    assert all(o.passed for o in clean_checks(clean, report, spec))
    assert validate_frame(clean, spec) == []
    assert clean[spec.target.name].notna().all()
    assert set(clean[spec.target.name]) <= set(spec.target.classes)


def test_loan_file_has_the_real_quirks() -> None:
    data = (FIXTURES / FILES["loan_approval"]).read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    assert data.count(b"\r\n") == data.count(b"\n") == 16
    assert b", Graduate, No," in data and b" loan_status \r\n" in data
    assert b", Graduate , Yes ," in data and b" Approved \r\n" in data


def test_loan_headers_and_values_are_stripped(specs) -> None:
    raw, clean, _ = ingest("loan_approval", specs)
    assert list(raw.columns)[:3] == ["loan_id", "no_of_dependents", "education"]
    assert raw.columns[-1] == "loan_status"  # was " loan_status " after a BOM-led header
    assert not any("\ufeff" in c or c != c.strip() for c in raw.columns)
    for column in ("education", "self_employed", "loan_status"):
        assert all(v == v.strip() for v in clean[column]), column
    assert set(clean["education"]) == {"Graduate", "Not Graduate"}
    assert set(clean["self_employed"]) == {"Yes", "No"}
    assert clean["loan_status"].value_counts().to_dict() == {"Approved": 7, "Rejected": 8}
    assert clean["loan_id"].tolist() == list(range(1, 16))
    assert str(clean["cibil_score"].dtype) == "Int64"
    # Numbers written with spaces (" 22700000") read as numbers.
    row = clean.set_index("loan_id").loc[12]
    assert row["loan_amount"] == 22_700_000 and row["loan_term"] == 18
    # -100000, the placeholder for an unknown residential asset value, becomes missing.
    missing = clean.loc[clean["residential_assets_value"].isna(), "loan_id"].tolist()
    assert missing == [11, 13]


def test_mushroom_semicolons_and_empty_fields(specs) -> None:
    path = FIXTURES / FILES["mushroom"]
    assert sniff_delimiter(path.read_text()) == ";"
    raw, clean, _ = ingest("mushroom", specs)
    assert raw.shape == (18, 21)
    assert raw["class"].tolist()[:4] == ["p", "p", "p", "p"]
    assert clean["cap-diameter"].tolist()[:2] == [15.26, 16.6]
    # Empty fields are missing values, not empty strings.
    lines = [line.split(";") for line in path.read_text().splitlines()]
    for column in ("spore-print-color", "veil-type", "stem-root", "gill-spacing"):
        position = lines[0].index(column)
        empty = sum(1 for fields in lines[1:] if fields[position] == "")
        assert clean[column].isna().sum() == empty > 0, column
    assert clean["veil-type"].isna().mean() > 0.75
    assert not (clean.select_dtypes(object) == "").any().any()
    # "f" is a code (none), not a missing value: the stemless specimen keeps it, with 0 sizes.
    stemless = clean[clean["stem-root"] == "f"]
    assert len(stemless) == 1
    assert stemless[["stem-height", "stem-width"]].to_numpy().tolist() == [[0.0, 0.0]]
    assert clean.duplicated(subset=specs["mushroom"].feature_names).sum() == 1


def test_obesity_values_keep_their_precision(specs) -> None:
    raw, clean, _ = ingest("obesity", specs)
    assert raw.shape == (24, 17)
    assert clean["FCVC"].dtype == np.float64
    assert 2.432302 in clean["FCVC"].tolist()
    assert clean["Age"].min() >= 18 and clean["Height"].max() < 2
    assert clean.duplicated().sum() == 1  # the real file repeats some survey rows verbatim
    bmi = clean["Weight"] / clean["Height"] ** 2
    assert (bmi[clean["NObeyesdad"] == "Obesity_Type_III"] >= 40).all()
