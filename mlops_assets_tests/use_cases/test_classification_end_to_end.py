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
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from mlops_assets.specs import UseCaseSpec, use_case_specs
from mlops_assets_tests.harness.homes import point_at_home

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FILES = {
    "loan_approval": "loan_approval_quirky.csv",
    "mushroom": "mushroom_secondary.csv",
    "obesity": "obesity.csv",
}
END = dt.date(2025, 3, 3)
ROWS, DAYS, SEED = 300, 3, 5


def land_bytes(use_case: str, day: str, name: str, data: bytes) -> None:
    from mlops_assets.environment import Environment

    Environment.from_env().landing_zone().land(use_case, day, name, data)


def land_repeated_specimens(days: list[str]) -> int:
    """The first day's specimens partly landed again on the last day, in the real ``;`` dialect."""
    from mlops_assets.generators import get_generator

    day = dt.date.fromisoformat(days[0])
    first = get_generator("mushroom").generate(ROWS, day, SEED, stream=1)  # the first day landed
    again = first.sample(60, random_state=0)
    buffer = io.StringIO()
    again.to_csv(buffer, sep=";", index=False)
    land_bytes("mushroom", days[-1], "repeated.csv", buffer.getvalue().encode())
    return len(again)


def check_champion(spec: UseCaseSpec, test: pd.DataFrame) -> None:
    """The champion of a use case (or of one segment) is sound on the test set."""
    from mlops_assets.environment import Environment
    from mlops_assets.features.pipeline import model_input
    from mlops_assets.names import CHAMPION
    from mlops_assets.registry.status import slot_status
    from mlops_assets.training.evaluation import evaluate, spec_metrics
    from mlops_assets.training.families import predict_frame

    tracking = Environment.from_env().tracking()
    status = slot_status(spec, tracking)
    champion = status[CHAMPION]
    assert champion is not None and champion["version"] == "1", spec.registered_model_name()
    assert set(spec_metrics(spec)) <= set(champion["metrics"])
    assert {"brier", "ece"} <= set(champion["metrics"])

    # Per-class probabilities in the spec's class order, summing to 1.
    pipeline = tracking.load_pipeline(spec.registered_model_name(), champion["version"])
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


@dataclass
class TrainedUseCase:
    """A use case refreshed once in its own home: generated days plus its real-dialect file."""

    spec: UseCaseSpec
    home: Path
    days: list[str]
    instance: dg.DagsterInstance
    outcome: Any
    repeated: int


@pytest.fixture(scope="module", params=sorted(FILES))
def trained(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TrainedUseCase]:
    import mlflow

    from mlops_assets.environment import Environment
    from mlops_assets.ops.demo import land_generated_days
    from mlops_assets.ops.launch import load_definitions, refresh

    uc = request.param
    home = tmp_path_factory.mktemp(uc) / "mlops"
    saved = dict(os.environ)
    saved_uris = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    with pytest.MonkeyPatch.context() as patch:
        point_at_home(patch, home)
        spec = use_case_specs()[uc]
        env = Environment.from_env()
        days = land_generated_days(env, uc, days=DAYS, rows=ROWS, seed=SEED, end=END)
        land_bytes(uc, days[0], FILES[uc], (FIXTURES / FILES[uc]).read_bytes())
        repeated = land_repeated_specimens(days) if uc == "mushroom" else 0
        instance = dg.DagsterInstance.ephemeral()
        outcome = refresh(spec, env, load_definitions(), instance, n_trials=3, seed=SEED)
        yield TrainedUseCase(spec, home, days, instance, outcome, repeated)
    os.environ.clear()
    os.environ.update(saved)
    mlflow.set_tracking_uri(saved_uris[0])
    mlflow.set_registry_uri(saved_uris[1])


def test_use_case_materializes_end_to_end(trained: TrainedUseCase) -> None:
    spec, days, instance, outcome = trained.spec, trained.days, trained.instance, trained.outcome
    uc, repeated = spec.name, trained.repeated
    fixture = (FIXTURES / FILES[uc]).read_bytes()
    assert outcome.success, [r.errors for r in outcome.ingested] + [outcome.retrain]
    assert sorted(r.partition for r in outcome.ingested) == days

    storage = trained.home / "storage" / uc
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


@pytest.mark.integration
@pytest.mark.parametrize("trained", ["loan_approval", "obesity"], indirect=True)
def test_the_bento_serves_the_use_case(trained: TrainedUseCase) -> None:
    """``bentoml serve`` on the champion's bento: per-class probabilities summing to 1, and the
    champion's own predictions. mushroom's two-segment bento is served in
    ``serving/test_segment_service.py``."""
    from mlops_assets.environment import Environment
    from mlops_assets.features.cleaning import clean_frame
    from mlops_assets.features.pipeline import model_input
    from mlops_assets.ops.serve import bento_store
    from mlops_assets.training.families import predict_frame
    from mlops_assets_tests.harness.bento import start_bento

    spec = trained.spec
    with pytest.MonkeyPatch.context() as patch:
        point_at_home(patch, trained.home)
        env = Environment.from_env()
        mlflow = env.tracking()
        tag = bento_store(env).current_bento_tag(spec)
        assert tag is not None
        rows = pd.read_parquet(trained.home / "storage" / spec.name / "test_set.parquet").head(40)
        fields = [c.name for c in spec.input_columns]
        records = [
            {k: (None if pd.isna(v) else v) for k, v in r.items()}
            for r in rows[fields].astype(object).to_dict("records")
        ]
        server = start_bento(tag, trained.home / "serve", MLOPS_PREDICTION_LOG="off")
        try:
            answer = server.predict({"records": records})
            lacking = {k: v for k, v in records[0].items() if k != fields[-1]}
            missing = server.predict({"records": [lacking]})
        finally:
            server.stop()
        pipeline = mlflow.load_pipeline(spec.registered_model_name(), "1")
        cleaned, _ = clean_frame(rows[fields], spec)
        labels, proba = predict_frame(pipeline, model_input(cleaned, spec), spec)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    classes = list(spec.target.classes or [])
    assert body["predictions"] == list(labels)
    served = np.array([[p[c] for c in classes] for p in body["probabilities"]])
    assert np.allclose(served.sum(axis=1), 1.0)
    assert served == pytest.approx(proba, abs=1e-9)
    assert missing.status_code == 422 and fields[-1] in missing.text
