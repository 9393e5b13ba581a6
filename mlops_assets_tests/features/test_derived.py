"""Derived features: declared in the spec, computed by the one feature path, fitted on training
rows only, served from a single record."""

from __future__ import annotations

import datetime as dt
import pickle

import numpy as np
import pandas as pd
import pytest

from mlops_assets.features.cleaning import clean_frame
from mlops_assets.features.derived import model_spec, with_derived
from mlops_assets.features.pipeline import model_input
from mlops_assets.generators import get_generator
from mlops_assets.monitoring.profile import build_profile, compare
from mlops_assets.serving.records import example_record
from mlops_assets.serving.scoring import Accepted, Scorer
from mlops_assets.specs import use_case_specs
from mlops_assets.specs.catalog import SpecError, parse_spec
from mlops_assets.training.families import build_pipeline, fit_pipeline


@pytest.fixture(scope="module")
def bigmart():
    return use_case_specs()["bigmart_sales"]


def _spec_with(derived: list[dict]) -> dict:
    return {
        "name": "toy",
        "task": "regression",
        "target": {"name": "y"},
        "id_columns": [{"name": "item", "type": "categorical", "closed": False}],
        "features": [
            {"name": "height", "type": "numeric"},
            {"name": "weight", "type": "numeric"},
            {"name": "kind", "type": "categorical", "closed": False},
            {"name": "sold_on", "type": "date"},
        ],
        "derived": derived,
        "primary_metric": "rmse",
        "partitions": {"start_date": "2024-01-01"},
        "models": [
            {"family": "ridge", "search_space": {"alpha": {"type": "float", "low": 0.1, "high": 1}}}
        ],
    }


@pytest.mark.parametrize(
    ("derived", "message"),
    [
        (
            [{"kind": "ratio", "name": "bmi", "numerator": "weight", "denominator": "size"}],
            "derived.bmi: unknown column `size`",
        ),
        (
            [{"kind": "prefix", "name": "p", "column": "height", "length": 2}],
            "a prefix needs a categorical (text) column",
        ),
        (
            [{"kind": "difference", "name": "weight", "left": "weight", "right": 1}],
            "derived.weight: the name is already a column",
        ),
        (
            [{"kind": "product", "name": "k2", "left": "kind", "right": 2}],
            "`kind` is not a numeric column",
        ),
        (
            [{"kind": "date_part", "name": "m", "column": "kind", "part": "month"}],
            "a date part needs a date column",
        ),
        (
            [{"kind": "group_stat", "name": "g", "column": "weight", "group_by": "shelf"}],
            "derived.g: unknown column `shelf`",
        ),
    ],
)
def test_a_derived_feature_on_a_wrong_column_is_a_spec_error_naming_it(derived, message) -> None:
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_spec(_spec_with(derived))


def test_row_level_derivations_compute_their_values() -> None:
    spec = parse_spec(
        _spec_with(
            [
                {
                    "kind": "ratio",
                    "name": "bmi",
                    "numerator": "weight",
                    "denominator": "height",
                    "power": 2,
                },
                {"kind": "difference", "name": "age", "left": 2013, "right": "height"},
                {"kind": "product", "name": "double", "left": "weight", "right": 2},
                {"kind": "prefix", "name": "family", "column": "item", "length": 2},
                {
                    "kind": "date_part",
                    "name": "weekday",
                    "column": "sold_on",
                    "part": "day_of_week",
                },
            ]
        )
    )
    frame = pd.DataFrame(
        {
            "item": ["FDA15", "DR1", None],
            "height": [2.0, 0.0, None],
            "weight": [80.0, 70.0, 60.0],
            "kind": ["a", "b", "c"],
            "sold_on": ["2024-01-01", "2024-01-06", "not a date"],
        }
    )
    out = with_derived(frame, spec)
    assert out["bmi"].iloc[0] == pytest.approx(20.0)
    assert np.isnan(out["bmi"].iloc[1])  # divided by zero: missing, not infinite
    assert np.isnan(out["bmi"].iloc[2])
    assert out["age"].tolist()[:2] == [2011.0, 2013.0]
    assert out["double"].tolist() == [160.0, 140.0, 120.0]
    assert out["family"].tolist()[:2] == ["FD", "DR"] and pd.isna(out["family"].iloc[2])
    assert out["weekday"].tolist()[:2] == [0.0, 5.0] and np.isnan(out["weekday"].iloc[2])
    assert with_derived(out, spec)["bmi"].equals(out["bmi"])  # idempotent
    assert list(model_input(frame, model_spec(spec)).columns)[-5:] == [
        "bmi",
        "age",
        "double",
        "family",
        "weekday",
    ]


def _bigmart_rows(spec, days: int = 3, rows: int = 400) -> pd.DataFrame:
    generator = get_generator(spec.generator)
    raw = pd.concat(
        [generator.generate(rows, dt.date(2024, 1, 1) + dt.timedelta(i), 7) for i in range(days)],
        ignore_index=True,
    )
    clean, _ = clean_frame(raw, spec)
    return clean


def test_bigmart_group_statistic_is_fitted_on_training_rows_and_served_per_record(bigmart) -> None:
    modelled = model_spec(bigmart)
    assert {"Item_Category", "Outlet_Age", "Item_Visibility_Mean"} <= set(modelled.feature_names)
    assert not {"Item_Category", "Outlet_Age", "Item_Visibility_Mean"} & {
        c.name for c in bigmart.input_columns
    }  # a client never sends a derived feature
    assert set(example_record(bigmart)) == {c.name for c in bigmart.input_columns}

    rows = _bigmart_rows(bigmart)
    train, test = rows.iloc[:800], rows.iloc[800:]
    pipeline = build_pipeline(modelled, "ridge", {"alpha": 1.0})
    fit_pipeline(pipeline, model_input(train, modelled), train[bigmart.target.name], 10)

    stat = pipeline.named_steps["group_stats"]
    ((per_item, overall),) = stat.stats_
    learnt = train.dropna(subset=["Item_Visibility"]).groupby("Item_Identifier")["Item_Visibility"]
    assert per_item == pytest.approx(learnt.mean().to_dict())  # training rows only
    assert overall == pytest.approx(train["Item_Visibility"].mean())

    transformed = pipeline[:-2].transform(model_input(test, modelled))
    unseen = ~test["Item_Identifier"].isin(per_item.keys())
    assert unseen.any() and (~unseen).any()
    assert transformed.loc[unseen.to_numpy(), "Item_Visibility_Mean"].eq(overall).all()
    seen = test.loc[~unseen, "Item_Identifier"].map(per_item)
    assert transformed.loc[(~unseen).to_numpy(), "Item_Visibility_Mean"].tolist() == pytest.approx(
        seen.tolist()
    )

    # the pickled pipeline, served one raw record at a time, predicts what the batch path did
    served = pickle.loads(pickle.dumps(pipeline))
    scorer = Scorer(bigmart, served, "bigmart_sales", "1")
    raw = test.head(3)
    batch = served.predict(model_input(raw, modelled))
    for position in range(3):
        record = {
            c.name: (None if pd.isna(v := raw[c.name].iloc[position]) else v)
            for c in bigmart.input_columns
        }
        record = {k: (v.item() if hasattr(v, "item") else v) for k, v in record.items()}
        (outcome,) = scorer.score_requests([{k: [v] for k, v in record.items()}], ["r"])
        assert isinstance(outcome, Accepted), outcome
        assert outcome.predictions[0] == pytest.approx(max(batch[position], 0.0), rel=1e-6)


def test_profiles_describe_row_level_derivations_and_not_fitted_statistics(bigmart) -> None:
    modelled = model_spec(bigmart)
    rows = _bigmart_rows(bigmart, days=1)
    profile = build_profile(modelled, rows)
    assert {"Item_Category", "Outlet_Age"} <= set(profile["features"])
    assert "Item_Visibility_Mean" not in profile["features"]
    assert set(profile["features"]["Item_Category"]["shares"]) <= {"FD", "DR", "NC", "other"}
    shifted = rows.assign(Outlet_Establishment_Year=rows["Outlet_Establishment_Year"] - 30)
    by_column = {s.column: s for s in compare(profile, shifted, modelled)}
    assert by_column["Outlet_Age"].psi > by_column["Item_MRP"].psi
