"""A segmented use case's bento served for real: ``bentoml serve`` routes records by their fields.

mushroom is refreshed once in its own home (two segment champions, one bento carrying both);
the served answers must come from the right segment's champion, match that champion offline,
and a record carrying no segment's fields must be a 422 naming what it lacks.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass

import pandas as pd
import pytest

from mlops_assets.specs import UseCaseSpec, use_case_specs
from mlops_assets_tests.harness.bento import ServedBento, start_bento
from mlops_assets_tests.harness.homes import point_at_home
from mlops_assets_tests.harness.records import records

pytestmark = pytest.mark.integration


@dataclass
class SegmentedServer:
    server: ServedBento
    spec: UseCaseSpec
    rows: pd.DataFrame


@pytest.fixture(scope="module")
def segmented(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SegmentedServer]:
    """mushroom trained in its own home and its bento served."""
    import dagster as dg
    import mlflow

    from mlops_assets.environment import Environment
    from mlops_assets.generators import get_generator
    from mlops_assets.ops.demo import land_generated_days
    from mlops_assets.ops.launch import load_definitions, refresh
    from mlops_assets.ops.serve import bento_store

    folder = tmp_path_factory.mktemp("segmented")
    saved = dict(os.environ)
    # Training points MLflow's process-wide URIs at this home; later modules (the session's
    # BigMart home) read them through the fluent API, so they are put back afterwards.
    saved_uris = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    with pytest.MonkeyPatch.context() as patch:
        point_at_home(patch, folder / "mlops")
        env = Environment.from_env()
        spec = use_case_specs()["mushroom"]
        land_generated_days(env, "mushroom", days=2, rows=250, seed=4)
        instance = dg.DagsterInstance.ephemeral()
        outcome = refresh(spec, env, load_definitions(), instance, n_trials=2)
        assert outcome.success, [r.errors for r in outcome.ingested] + [outcome.retrain]
        tag = bento_store(env).current_bento_tag(spec)
        assert tag is not None
        rows = get_generator("mushroom").generate(30, dt.date(2025, 3, 1), seed=21)
        server = start_bento(
            tag,
            folder / "serve",
            MLOPS_PREDICTION_LOG="off",
            MLOPS_FOLLOW_CHAMPION="on",
            MLOPS_CHAMPION_POLL_S="1",
        )
        try:
            yield SegmentedServer(server, spec, rows)
        finally:
            server.stop()
    os.environ.clear()
    os.environ.update(saved)
    mlflow.set_tracking_uri(saved_uris[0])
    mlflow.set_registry_uri(saved_uris[1])


def offline(spec: UseCaseSpec, rows: pd.DataFrame) -> list[str]:
    """The segment champion's predictions without the service."""
    from mlops_assets.environment import Environment
    from mlops_assets.features.cleaning import clean_frame
    from mlops_assets.features.pipeline import model_input
    from mlops_assets.names import CHAMPION
    from mlops_assets.training.families import predict_frame

    mlflow = Environment.from_env().tracking()
    version = mlflow.alias_version(spec.registered_model_name(), CHAMPION).version
    pipeline = mlflow.load_pipeline(spec.registered_model_name(), str(version))
    cleaned, _ = clean_frame(rows[spec.feature_names], spec)
    labels, _ = predict_frame(pipeline, model_input(cleaned, spec), spec)
    return list(labels)


@pytest.mark.parametrize("segment", ["cap_gill", "stem_season"])
def test_records_go_to_the_segment_whose_fields_they_carry(
    segmented: SegmentedServer, segment: str
) -> None:
    view = segmented.spec.segment_spec(segment)
    rows = segmented.rows.head(10)
    answer = segmented.server.predict({"records": records(rows, view.feature_names)})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["segments"] == [segment] * 10
    assert body["model_name"] == f"mushroom__{segment}"
    assert list(body["models"]) == [segment]
    assert body["predictions"] == offline(view, rows)  # the home is still this module's


def test_mixed_request_and_full_records(segmented: SegmentedServer) -> None:
    spec = segmented.spec
    stem = spec.segment_spec("stem_season").feature_names
    cap = spec.segment_spec("cap_gill").feature_names
    full = records(segmented.rows.head(3), spec.feature_names)
    body = [
        {k: full[0][k] for k in stem},
        full[1],  # every field: the first segment in spec order
        {k: full[2][k] for k in cap},
    ]
    answer = segmented.server.predict({"records": body})
    assert answer.status_code == 200, answer.text
    assert answer.json()["segments"] == ["stem_season", "cap_gill", "cap_gill"]
    assert len(answer.json()["probabilities"]) == 3


def test_record_of_no_segment_is_a_422(segmented: SegmentedServer) -> None:
    answer = segmented.server.predict({"records": [{"cap-shape": "x", "season": "a"}]})
    assert answer.status_code == 422
    body = answer.json()
    assert body["detail"][0]["record"] == 0
    assert "cap_gill needs cap-diameter" in body["error"]
    assert "stem_season needs stem-height" in body["error"]
    # The service still answers afterwards.
    cap = segmented.spec.segment_spec("cap_gill").feature_names
    again = segmented.server.predict({"records": records(segmented.rows.head(1), cap)})
    assert again.status_code == 200


def test_columns_body_is_routed_by_its_columns(segmented: SegmentedServer) -> None:
    stem = segmented.spec.segment_spec("stem_season").feature_names
    rows = records(segmented.rows.head(4), stem)
    columns = {name: [r[name] for r in rows] for name in stem}
    answer = segmented.server.client.post("/predict_columns", json={"columns": columns})
    assert answer.status_code == 200, answer.text
    assert answer.json()["model_name"] == "mushroom__stem_season"


def test_mlops_serve_segment_answers_for_that_segment_only(
    segmented: SegmentedServer, tmp_path
) -> None:
    """``mlops serve mushroom --segment stem_season``: a record with every field goes to
    stem_season (cap_gill is not served), and a cap/gill record is a 422 naming what it lacks."""
    spec = segmented.spec
    narrowed = start_bento(
        segmented.server.bento_tag,
        tmp_path / "serve-stem",
        via_cli=True,
        cli_args=("mushroom", "--segment", "stem_season"),
        MLOPS_PREDICTION_LOG="off",
    )
    try:
        full = records(segmented.rows.head(2), spec.feature_names)
        answer = narrowed.predict({"records": full})
        cap = spec.segment_spec("cap_gill").feature_names
        refused = narrowed.predict({"records": records(segmented.rows.head(1), cap)})
    finally:
        narrowed.stop()
    assert answer.status_code == 200, answer.text
    assert answer.json()["segments"] == ["stem_season"] * 2
    assert list(answer.json()["models"]) == ["stem_season"]
    assert refused.status_code == 422
    assert "stem_season needs stem-height" in refused.json()["error"]
    assert "cap_gill" not in refused.json()["error"]


def test_each_segment_follows_its_own_champion(segmented: SegmentedServer) -> None:
    """A new champion of one segment is served without a restart; the other keeps its own."""
    import time

    import dagster as dg

    from mlops_assets.environment import Environment
    from mlops_assets.names import CHAMPION
    from mlops_assets.ops.launch import load_definitions, refresh

    spec = segmented.spec
    env = Environment.from_env()
    instance = dg.DagsterInstance.ephemeral()
    outcome = refresh(spec, env, load_definitions(), instance, n_trials=1, segment="cap_gill")
    assert outcome.success, outcome.retrain
    env.tracking().client().set_registered_model_alias("mushroom__cap_gill", CHAMPION, "2")
    cap = spec.segment_spec("cap_gill").feature_names
    stem = spec.segment_spec("stem_season").feature_names
    full = records(segmented.rows.head(2), spec.feature_names)
    body = [{k: full[0][k] for k in cap}, {k: full[1][k] for k in stem}]
    deadline = time.monotonic() + 60
    while True:
        answer = segmented.server.predict({"records": body})
        assert answer.status_code == 200, answer.text
        models = answer.json()["models"]
        if models["cap_gill"]["model_version"] == "2" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert models["cap_gill"] == {"model_name": "mushroom__cap_gill", "model_version": "2"}
    assert models["stem_season"] == {"model_name": "mushroom__stem_season", "model_version": "1"}
