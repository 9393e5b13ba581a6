"""The promotion gate, on its own and against a real (SQLite) MLflow registry."""

import datetime as dt

import dagster as dg
import pandas as pd
import pytest

from mlops_assets.components import features as feature_assets
from mlops_assets.components.registry import build_champion_model, promote
from mlops_assets.components.resources import resources_for
from mlops_assets.environment import Environment
from mlops_assets.features.cleaning import clean_frame
from mlops_assets.features.pipeline import model_input
from mlops_assets.generators import get_generator
from mlops_assets.names import CHALLENGER, CHAMPION
from mlops_assets.registry.promotion import ConcurrentPromotionError, decide
from mlops_assets.registry.tracking import Tracking
from mlops_assets.specs import use_case_specs
from mlops_assets.storage.tables import table_key, write_table
from mlops_assets.training.families import build_pipeline
from mlops_assets.training.registration import log_and_register


@pytest.mark.parametrize(
    ("metric", "challenger", "incumbent", "margin", "promote_it"),
    [
        ("rmse", 95.0, 100.0, 0.01, True),
        ("rmse", 99.5, 100.0, 0.01, False),
        ("rmse", 101.0, 100.0, 0.0, False),
        ("roc_auc", 0.90, 0.85, 0.01, True),
        ("roc_auc", 0.851, 0.85, 0.01, False),
        ("log_loss", 0.30, 0.40, 0.05, True),
    ],
)
def test_decide_applies_the_margin(metric, challenger, incumbent, margin, promote_it) -> None:
    decision = decide(metric, margin, "2", challenger, "1", incumbent)
    assert decision.promote is promote_it
    assert ("beats" in decision.reason) is promote_it


def test_first_model_is_champion() -> None:
    decision = decide("rmse", 0.01, "1", 500.0, None, None)
    assert decision.promote and "first model" in decision.reason


def test_same_version_is_not_promoted_again() -> None:
    assert not decide("rmse", 0.01, "3", 10.0, "3", 10.0).promote


@pytest.fixture
def spec():
    return use_case_specs()["bigmart_sales"]


def labelled_rows(spec, day: dt.date, rows: int) -> pd.DataFrame:
    frame, _ = clean_frame(get_generator("bigmart_sales").generate(rows, day, 11), spec)
    frame["_landed_date"] = day.isoformat()
    return frame


def register(spec, mlflow: Tracking, family: str, params: dict, train: pd.DataFrame) -> str:
    """Fit a pipeline and register it as the challenger, as tuned_model does."""
    pipeline = build_pipeline(spec, family, params)
    pipeline.fit(model_input(train, spec), train[spec.target.name])
    with mlflow.start_run(spec.name, "test", {}, None):
        return log_and_register(spec, mlflow, pipeline, train)


def run_gate(spec, resources) -> dg.MaterializeResult:
    champion = build_champion_model(spec)
    result = dg.materialize(
        [champion, dg.AssetSpec(feature_assets.test_key(spec))],
        resources=resources,
        raise_on_error=True,
    )
    return result.asset_materializations_for_node(f"{spec.name}__champion_model")[0].metadata


def test_gate_against_the_registry(mlops_home, spec) -> None:
    resources = resources_for(Environment.from_env())
    mlflow: Tracking = resources["mlflow"].tracking()
    train = labelled_rows(spec, dt.date(2025, 1, 1), 1500)
    write_table(
        resources["lake"].store(),
        table_key(feature_assets.test_key(spec).path),
        labelled_rows(spec, dt.date(2025, 1, 2), 600),
    )
    weak = {"alpha": 1e7}  # a ridge this stiff predicts about the mean

    assert register(spec, mlflow, "ridge", weak, train) == "1"
    first = run_gate(spec, resources)
    assert first["promoted"].value is True
    assert str(mlflow.alias_version(spec.name, CHAMPION).version) == "1"

    assert register(spec, mlflow, "hist_gradient_boosting", {}, train) == "2"
    better = run_gate(spec, resources)
    assert better["promoted"].value is True
    assert better["incumbent_version"].value == "1"
    assert better["challenger_rmse"].value < better["incumbent_rmse"].value
    assert str(mlflow.alias_version(spec.name, CHAMPION).version) == "2"

    assert register(spec, mlflow, "ridge", weak, train) == "3"
    worse = run_gate(spec, resources)
    assert worse["promoted"].value is False
    assert "does not beat" in worse["reason"].value
    assert str(mlflow.alias_version(spec.name, CHAMPION).version) == "2"
    assert str(mlflow.alias_version(spec.name, CHALLENGER).version) == "3"
    tags = mlflow.client().get_model_version(spec.name, "2").tags
    assert float(tags["test_rmse"]) == pytest.approx(worse["incumbent_rmse"].value, rel=1e-5)
    assert tags["previous_champion"] == "1"


def test_concurrent_promotion_is_never_overwritten(mlops_home, spec) -> None:
    mlflow = Environment.from_env().tracking()
    train = labelled_rows(spec, dt.date(2025, 1, 1), 300)
    for _ in range(3):
        register(spec, mlflow, "ridge", {}, train)
    mlflow.client().set_registered_model_alias(spec.name, CHAMPION, "1")
    decision = decide("rmse", 0.01, "3", 10.0, "1", 20.0)
    # Another run promotes version 2 while this one was scoring against version 1.
    mlflow.client().set_registered_model_alias(spec.name, CHAMPION, "2")
    with pytest.raises(ConcurrentPromotionError, match="champion moved from v1 to v2"):
        promote(mlflow, spec, decision)
    assert str(mlflow.alias_version(spec.name, CHAMPION).version) == "2"
