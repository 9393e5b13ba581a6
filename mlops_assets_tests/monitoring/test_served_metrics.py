"""Served predictions scored against the labels that land later, joined row by row.

The log is built by the service's own code (a ``Scorer`` feeding ``log_frame``) from raw records;
the labels are the same records' clean rows, as ``clean_data`` holds them. BigMart joins on its
id columns; obesity has none and joins on every input column.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from mlops_assets.features.cleaning import clean_frame
from mlops_assets.features.pipeline import model_input
from mlops_assets.generators import get_generator
from mlops_assets.monitoring.performance import join_columns, served_metrics
from mlops_assets.prediction_log import ScoredBatch, log_frame
from mlops_assets.serving.records import columns_of
from mlops_assets.serving.scoring import Scorer
from mlops_assets.specs import use_case_specs
from mlops_assets.training.evaluation import score_predictions
from mlops_assets.training.families import build_pipeline

FAMILY = {"bigmart_sales": ("ridge", {"alpha": 1.0}), "obesity": ("logistic_regression", {})}


def served_log(use_case: str, rows: pd.DataFrame) -> tuple[pd.DataFrame, list]:
    """The prediction log of ``rows`` scored by the service's code, and the predictions."""
    spec = use_case_specs()[use_case]
    train, _ = clean_frame(get_generator(use_case).generate(300, dt.date(2025, 1, 1), 1), spec)
    family, params = FAMILY[use_case]
    pipeline = build_pipeline(spec, family, params)
    target = train[spec.target.name]
    pipeline.fit(model_input(train, spec), target.astype(str) if spec.is_classification else target)
    batches: list[ScoredBatch] = []
    scorer = Scorer(spec, pipeline, use_case, "1", on_scored=batches.append)
    fields = [c.name for c in spec.input_columns]
    records = [
        {k: (None if pd.isna(v) else v) for k, v in r.items()}
        for r in rows[fields].astype(object).to_dict("records")
    ]
    [answer] = scorer.score_requests([columns_of(records, spec)], ["req"])
    return log_frame(batches, spec), answer.predictions


@pytest.mark.parametrize("use_case", ["bigmart_sales", "obesity"])
def test_served_predictions_meet_their_labels(use_case: str) -> None:
    spec = use_case_specs()[use_case]
    rows = get_generator(use_case).generate(40, dt.date(2025, 2, 1), 7)
    log, predictions = served_log(use_case, rows)
    labelled, _ = clean_frame(rows, spec)
    # Some rows were served twice (the last answer counts), one label arrived unserved.
    log = pd.concat([log.iloc[:5], log], ignore_index=True)
    extra = clean_frame(get_generator(use_case).generate(1, dt.date(2025, 3, 1), 8), spec)[0]
    found = served_metrics(spec, log, pd.concat([labelled, extra], ignore_index=True))
    assert found["served_rows"] == len(labelled)
    proba = None
    if spec.is_classification:
        proba = log.iloc[5:][[f"proba_{c}" for c in spec.target.classes or []]].to_numpy()
    expected = score_predictions(
        spec, labelled[spec.target.name], np.asarray(predictions), proba, labelled
    )
    assert found[f"served_{spec.primary_metric}"] == pytest.approx(expected[spec.primary_metric])


def test_without_ids_every_input_column_joins() -> None:
    obesity = use_case_specs()["obesity"]
    assert obesity.id_names == []
    assert join_columns(obesity) == [c.name for c in obesity.input_columns]
    assert join_columns(use_case_specs()["bigmart_sales"]) == [
        "Item_Identifier",
        "Outlet_Identifier",
    ]
    assert join_columns(use_case_specs()["m5_sales"]) == ["id", "date"]
