"""Scoring raw records through the shared cleaning and model code, one request or many at once.

A concatenated batch must answer every request as if it had been scored alone: problems are
numbered within their own request, and one bad request never fails or shifts its neighbours.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlops_assets.features.cleaning import clean_frame
from mlops_assets.features.pipeline import model_input
from mlops_assets.prediction_log import ScoredBatch
from mlops_assets.serving.records import columns_of
from mlops_assets.serving.scoring import Accepted, Rejected, Scorer
from mlops_assets.specs import UseCaseSpec
from mlops_assets.training.families import predict_frame
from mlops_assets_tests.harness.records import landed_records, record


def score(scorer: Scorer, *requests: list[dict[str, Any]]) -> list[Accepted | Rejected]:
    """Score records bodies the way the service does: as columns, in one pass."""
    columns = [columns_of(records, scorer.spec) for records in requests]
    return scorer.score_requests(columns, [f"r{i}" for i in range(len(requests))])


@pytest.fixture
def scorer(spec: UseCaseSpec, fitted_pipeline: Any) -> Scorer:
    return Scorer(spec, fitted_pipeline, "bigmart_sales", "7")


def offline(spec: UseCaseSpec, pipeline: Any, frame: pd.DataFrame) -> np.ndarray:
    cleaned, _ = clean_frame(frame, spec)
    return predict_frame(pipeline, model_input(cleaned, spec), spec)[0]


def test_landed_rows_score_as_offline(spec, fitted_pipeline, scorer, landed_rows) -> None:
    """Dirty rows as landed (``LF``, zero visibility, missing weights) give offline predictions."""
    rows = landed_rows.head(200)
    records = landed_records(rows, spec)
    assert any(r["Item_Fat_Content"] in {"LF", "low fat", "reg"} for r in records)
    [outcome] = score(scorer, records)
    assert isinstance(outcome, Accepted)
    expected = offline(spec, fitted_pipeline, rows.drop(columns=[spec.target.name]))
    assert outcome.predictions == expected.tolist()
    assert outcome.ids == {
        "Item_Identifier": rows["Item_Identifier"].tolist(),
        "Outlet_Identifier": rows["Outlet_Identifier"].tolist(),
    }


def test_requests_scored_together_answer_as_alone(spec, scorer, landed_rows) -> None:
    """Equal up to float summation order: a linear model's BLAS sums depend on the batch."""
    records = landed_records(landed_rows.head(30), spec)
    requests = [records[:1], records[1:11], [record(Outlet_Type="Spaceport")], records[11:30]]
    together = score(scorer, *requests)
    alone = [score(scorer, r)[0] for r in requests]
    assert isinstance(together[2], Rejected) and together[2] == alone[2]
    for batched, single in zip(together, alone, strict=True):
        if isinstance(batched, Accepted):
            assert isinstance(single, Accepted) and batched.ids == single.ids
            np.testing.assert_allclose(batched.predictions, single.predictions, rtol=1e-12)
    assert [len(o.predictions) for o in together if isinstance(o, Accepted)] == [1, 10, 19]


def test_problems_are_numbered_within_their_request(scorer) -> None:
    good = [record() for _ in range(5)]
    bad = [record(), record(), record(), record(Outlet_Type="Spaceport", Item_MRP=-1)]
    outcomes = score(scorer, good, bad)
    assert isinstance(outcomes[0], Accepted)
    rejected = outcomes[1]
    assert isinstance(rejected, Rejected)
    assert [str(p) for p in rejected.problems] == [
        "records[3].Item_MRP: -1.0 is below 0.0",
        "records[3].Outlet_Type: 'Spaceport' is not one of "
        "['Grocery Store', 'Supermarket Type1', 'Supermarket Type2', 'Supermarket Type3']",
    ]
    assert rejected.message().endswith("(and 1 more problem)")


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"Item_MRP": None}, "records[0].Item_MRP: is required"),
        ({"Item_MRP": "abc"}, "records[0].Item_MRP: expected a number, got string 'abc'"),
        ({"Item_Identifier": None}, "records[0].Item_Identifier: is required"),
        ({"Item_Identifier": "  "}, "records[0].Item_Identifier: is required"),
        ({"Item_Visibility": 1.5}, "records[0].Item_Visibility: 1.5 is above 1.0"),
        ({"Outlet_Establishment_Year": 1800}, "records[0].Outlet_Establishment_Year: 1800"),
        ({"Item_Fat_Content": "Greasy"}, "records[0].Item_Fat_Content: 'Greasy' is not one of"),
    ],
)
def test_domain_problems_after_cleaning(scorer, changes: dict, expected: str) -> None:
    [outcome] = score(scorer, [record(**changes)])
    assert isinstance(outcome, Rejected)
    assert len(outcome.problems) == 1 and str(outcome.problems[0]).startswith(expected)


def test_open_categories_and_spellings_are_accepted(scorer) -> None:
    records = [
        record(Item_Type="Pet Food", Item_Fat_Content=" low fat "),
        record(Item_Fat_Content="reg", Item_Visibility=0, Item_Weight=None, Outlet_Size=None),
    ]
    [outcome] = score(scorer, records)
    assert isinstance(outcome, Accepted) and all(np.isfinite(outcome.predictions))


def test_accepted_rows_reach_the_log_hook(spec, fitted_pipeline) -> None:
    seen: list[ScoredBatch] = []
    scorer = Scorer(spec, fitted_pipeline, "bigmart_sales", "7", on_scored=seen.append)
    score(scorer, [record()] * 2, [record(Item_MRP="x")], [record()])
    [batch] = seen
    assert (batch.request_ids, batch.row_counts, batch.model_version) == (["r0", "r2"], [2, 1], "7")
    assert len(batch.cleaned) == len(batch.predictions) == 3
    assert set(batch.cleaned["Item_Fat_Content"]) == {"Low Fat"}


def test_score_frame_reports_and_skips_invalid_rows(spec, scorer, landed_rows) -> None:
    from mlops_assets.ingest.readers import read_csv_text

    raw = read_csv_text(landed_rows.head(20).drop(columns=[spec.target.name]).to_csv(index=False))
    raw.loc[4, "Item_MRP"] = "twelve"
    raw.loc[7, "Outlet_Type"] = "Spaceport"
    score = scorer.score_frame(raw)
    assert [p.row for p in score.problems] == [4, 7]
    assert "twelve" in str(score.problems[0])
    assert len(score.cleaned) == len(score.predictions) == 18
