"""Each classification use case end to end, in-process: landed days to a champion and its bento.

Three generated days plus the hand-written real-dialect file land in a fresh ``MLOPS_HOME``;
``refresh`` runs the same ingest and retrain jobs the sensors launch. The champion must carry
every metric of its spec plus calibration (Brier, ECE), return probabilities that sum to 1, and
reproduce its recorded test score. For mushrooms, specimens landed twice must never straddle
the split.
"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from mlops_assets.specs import UseCaseSpec, load_specs

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FILES = {
    "loan_approval": "loan_approval_quirky.csv",
    "mushroom": "mushroom_secondary.csv",
    "obesity": "obesity.csv",
}
END = dt.date(2025, 3, 3)
ROWS, DAYS, SEED = 300, 3, 5


def land_bytes(use_case: str, day: str, name: str, data: bytes) -> None:
    from mlops_assets.orchestration import initialized_resource
    from mlops_assets.resources import resources_for_environment

    with initialized_resource(resources_for_environment(), "landing") as landing:
        landing.land(use_case, day, name, data)


def land_repeated_specimens(days: list[str]) -> int:
    """The first day's specimens partly landed again on the last day, in the real ``;`` dialect."""
    from mlops_assets.generators import get_generator

    first = get_generator("mushroom").generate(ROWS, dt.date.fromisoformat(days[0]), SEED)
    again = first.sample(60, random_state=0)
    buffer = io.StringIO()
    again.to_csv(buffer, sep=";", index=False)
    land_bytes("mushroom", days[-1], "repeated.csv", buffer.getvalue().encode())
    return len(again)


def check_champion(spec: UseCaseSpec, test: pd.DataFrame) -> None:
    """The champion of a use case (or of one segment) is sound on the test set."""
    from mlops_assets.features.pipeline import model_input
    from mlops_assets.registry.mlflow_resource import CHAMPION, MlflowTracking
    from mlops_assets.registry.status import use_case_status
    from mlops_assets.training.evaluation import evaluate, spec_metrics
    from mlops_assets.training.families import predict_frame

    status = use_case_status(spec, MlflowTracking())
    champion = status[CHAMPION]
    assert champion is not None and champion["version"] == "1", spec.registered_model_name()
    assert set(spec_metrics(spec)) <= set(champion["metrics"])
    assert {"brier", "ece"} <= set(champion["metrics"])

    # Per-class probabilities in the spec's class order, summing to 1.
    pipeline = MlflowTracking().load_pipeline(spec.registered_model_name(), champion["version"])
    labels, proba = predict_frame(pipeline, model_input(test, spec), spec)
    assert proba.shape == (len(test), len(spec.target.classes or []))
    assert (proba >= 0).all() and np.allclose(proba.sum(axis=1), 1.0)
    assert set(labels) <= set(spec.target.classes or [])
    scores = evaluate(spec, pipeline, test)
    primary = spec.primary_metric
    assert scores[primary] == pytest.approx(champion["metrics"][primary], rel=1e-4)
    # Better than knowing only the class shares.
    majority = test[spec.target.name].value_counts(normalize=True).max()
    assert scores["accuracy"] > majority + 0.1


@pytest.mark.parametrize("uc", sorted(FILES))
def test_use_case_materializes_end_to_end(mlops_home: Path, uc: str) -> None:
    from mlops_assets.demo import land_generated_days
    from mlops_assets.orchestration import load_definitions, refresh

    spec = load_specs()[uc]
    days = land_generated_days(uc, days=DAYS, rows=ROWS, seed=SEED, end=END)
    fixture = (FIXTURES / FILES[uc]).read_bytes()
    land_bytes(uc, days[0], FILES[uc], fixture)
    repeated = land_repeated_specimens(days) if uc == "mushroom" else 0

    instance = dg.DagsterInstance.ephemeral()
    outcome = refresh(spec, load_definitions(), instance, n_trials=3, seed=SEED)
    assert outcome.success, [r.errors for r in outcome.ingested] + [outcome.retrain]
    assert sorted(r.partition for r in outcome.ingested) == days

    storage = mlops_home / "storage" / uc
    # The real-dialect file was ingested with the generated batch of its day, cleanly.
    clean = pd.read_parquet(storage / "clean_data" / f"{days[0]}.parquet")
    fixture_rows = clean["_source_file"].astype(str).str.endswith(FILES[uc])
    assert fixture_rows.sum() == fixture.count(b"\n") - 1
    assert clean[spec.target.name].notna().all()
    for column in spec.features:
        if column.type == "categorical":
            values = clean[column.name].dropna()
            assert (values == values.str.strip()).all(), column.name
    for name in ("raw_data", "clean_data"):
        assert sorted(p.stem for p in (storage / name).glob("*.parquet")) == days

    # The champion (of each segment): every metric of the spec with calibration, and its bento.
    test = pd.read_parquet(storage / "test_set.parquet")
    train = pd.read_parquet(storage / "train_set.parquet")
    assert len(test) > 50 and len(train) > 3 * len(test)
    views = spec.segment_specs()
    for view in views:
        check_champion(view, test)
    bento = instance.get_latest_materialization_event(dg.AssetKey([uc, "champion_bento"]))
    assert bento is not None
    if spec.segments:
        metadata = bento.asset_materialization.metadata
        assert {f"{s}_model" for s in spec.segment_names} <= set(metadata)
        assert [v.segment for v in views] == ["cap_gill", "stem_season"]

    if uc == "mushroom":
        features = spec.feature_names
        identity = {
            side: pd.util.hash_pandas_object(frame[features].astype(str), index=False)
            for side, frame in (("train", train), ("test", test))
        }
        assert not set(identity["train"]) & set(identity["test"])
        both = pd.concat([identity["train"], identity["test"]])
        assert both.duplicated().sum() >= repeated  # the repeated specimens are all there
