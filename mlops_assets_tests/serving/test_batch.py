"""``mlops predict`` on an unlabeled file, and ``mlops status`` showing the champion's bento."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlops_assets.cli import main
from mlops_assets.environment import Environment
from mlops_assets.features.cleaning import clean_frame
from mlops_assets.features.pipeline import model_input
from mlops_assets.names import CHAMPION
from mlops_assets.specs import UseCaseSpec
from mlops_assets.training.families import predict_frame


@pytest.fixture(scope="module")
def unlabeled(trained_home: Any, spec: UseCaseSpec, tmp_path_factory) -> Path:
    """A landed day without its target column, like BigMart's ``Test.csv``."""
    [landed] = (trained_home.home / "landing" / spec.name / trained_home.days[-1]).glob("*.csv")
    frame = pd.read_csv(landed, dtype=str, keep_default_na=False).drop(columns=[spec.target.name])
    path = tmp_path_factory.mktemp("predict") / "Test.csv"
    frame.head(120).to_csv(path, index=False)
    return path


def test_predict_scores_a_file_without_target(trained_home, spec, unlabeled, tmp_path) -> None:
    out = tmp_path / "scores.csv"
    assert main(["predict", spec.name, str(unlabeled), "-o", str(out)]) == 0
    scores = pd.read_csv(out)
    assert list(scores.columns) == [
        "row",
        "Item_Identifier",
        "Outlet_Identifier",
        "prediction",
        "model_name",
        "model_version",
    ]
    mlflow = Environment.from_env().tracking()
    version = str(mlflow.alias_version(spec.name, CHAMPION).version)
    assert set(scores["model_version"].astype(str)) == {version}
    raw = pd.read_csv(unlabeled, dtype=str, keep_default_na=False, na_values=[""])
    cleaned, _ = clean_frame(raw, spec)
    pipeline = mlflow.load_pipeline(spec.name, version)
    expected = predict_frame(pipeline, model_input(cleaned, spec), spec)[0]
    np.testing.assert_allclose(scores["prediction"], expected, rtol=1e-12)
    assert scores["Item_Identifier"].tolist() == raw["Item_Identifier"].tolist()


def test_invalid_rows_fail_unless_skipped(trained_home, spec, unlabeled, tmp_path, capsys):
    frame = pd.read_csv(unlabeled, dtype=str, keep_default_na=False)
    frame.loc[5, "Item_MRP"] = "twelve"
    frame.loc[9, "Outlet_Type"] = "Spaceport"
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    out = tmp_path / "scores.parquet"
    assert main(["predict", spec.name, str(bad), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert (
        "records[5].Item_MRP: cannot be read: 'twelve'" in err and "records[9].Outlet_Type" in err
    )
    assert not out.exists()
    assert main(["predict", spec.name, str(bad), "-o", str(out), "--skip-invalid"]) == 0
    scores = pd.read_parquet(out)
    assert len(scores) == len(frame) - 2 and {5, 9}.isdisjoint(scores["row"])


def test_missing_columns_and_files_are_errors(trained_home, spec, unlabeled, tmp_path, capsys):
    frame = pd.read_csv(unlabeled, dtype=str).drop(columns=["Item_MRP"])
    path = tmp_path / "narrow.csv"
    frame.to_csv(path, index=False)
    assert main(["predict", spec.name, str(path), "-o", str(tmp_path / "o.csv")]) == 2
    assert "missing columns ['Item_MRP']" in capsys.readouterr().err
    assert main(["predict", spec.name, str(tmp_path / "nope.csv"), "-o", "o.csv"]) == 2


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{tmp}", "is a directory: give one data file"),
        ("/dev/null", "/dev/null is a character device, not a data file"),
    ],
    ids=["directory", "dev-null"],
)
def test_a_directory_or_device_is_named(trained_home, spec, tmp_path, capsys, source, message):
    """Both used to say "no such file"."""
    path = source.format(tmp=tmp_path)
    assert main(["predict", spec.name, path, "-o", str(tmp_path / "o.csv")]) == 2
    assert message in capsys.readouterr().err


def test_an_output_directory_is_refused(trained_home, spec, unlabeled, tmp_path, capsys):
    assert main(["predict", spec.name, str(unlabeled), "-o", str(tmp_path)]) == 2
    assert "is a directory: give the output file's name" in capsys.readouterr().err


def test_formulas_in_text_cells_are_neutralised(trained_home, spec, unlabeled, tmp_path) -> None:
    """An id landed as ``=HYPERLINK(...)`` came out unchanged at the start of a cell."""
    frame = pd.read_csv(unlabeled, dtype=str, keep_default_na=False)
    hostile = ['=HYPERLINK("http://evil","x")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)"]
    hostile += ["-12.5"]
    for row, value in enumerate(hostile):
        frame.loc[row, "Item_Identifier"] = value
    path = tmp_path / "hostile.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "scores.csv"
    assert main(["predict", spec.name, str(path), "-o", str(out)]) == 0
    ids = pd.read_csv(out, dtype=str, keep_default_na=False)["Item_Identifier"].tolist()
    assert ids[:4] == ["'" + value for value in hostile[:4]]
    assert ids[4] == "-12.5"  # a number stays a number
    assert ids[5:] == frame["Item_Identifier"].tolist()[5:]
    numbers = pd.read_csv(out)["prediction"]
    assert numbers.dtype == float and not numbers.astype(str).str.startswith("'").any()
    parquet = tmp_path / "scores.parquet"
    assert main(["predict", spec.name, str(path), "-o", str(parquet)]) == 0
    assert pd.read_parquet(parquet)["Item_Identifier"].tolist()[0] == hostile[0]  # typed data


def test_neutralising_leaves_numbers_alone() -> None:
    from mlops_assets.ops.predict import neutralised

    frame = pd.DataFrame({"id": ["=1+1", "-5", "ok", "\r=x"], "prediction": [-1.0, 2.0, 3.0, 4.0]})
    out = neutralised(frame)
    assert out["id"].tolist() == ["'=1+1", "-5", "ok", "'\r=x"]
    assert out["prediction"].tolist() == [-1.0, 2.0, 3.0, 4.0]


def test_status_shows_the_bento(trained_home, spec, capsys) -> None:
    assert main(["status", spec.name, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    version = status["champion"]["version"]
    assert status["bento"].startswith(f"{spec.name}_service:v{version}-")
