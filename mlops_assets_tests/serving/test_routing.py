"""Segment routing in the service, without a server: mushroom's cap/gill and stem/season models.

Each segment's runtime scores with a small logistic regression fitted on that segment's features
only; a record is routed by the fields it carries, never by their values.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mlops_assets.environment import ServingOptions
from mlops_assets.features.cleaning import clean_frame
from mlops_assets.features.pipeline import model_input
from mlops_assets.prediction_log import PredictionLog, read_prediction_log
from mlops_assets.serving.routing import (
    choose_slot,
    missing_by_slot,
    route_records,
    served_segments,
)
from mlops_assets.serving.runtime import ServingRuntime, SlotRuntime
from mlops_assets.specs import UseCaseSpec, use_case_specs
from mlops_assets.storage.objectstore import LocalObjectStore

CAP_GILL = next(s.features for s in use_case_specs()["mushroom"].segments if s.name == "cap_gill")


@pytest.fixture(scope="module")
def mushroom() -> UseCaseSpec:
    return use_case_specs()["mushroom"]


@pytest.fixture(scope="module")
def landed(mushroom: UseCaseSpec) -> pd.DataFrame:
    from mlops_assets.generators import get_generator

    return get_generator("mushroom").generate(400, dt.date(2025, 3, 1), seed=3)


@pytest.fixture(scope="module")
def pipelines(mushroom: UseCaseSpec, landed: pd.DataFrame) -> dict[str, Any]:
    from mlops_assets.training.families import build_pipeline

    cleaned, _ = clean_frame(landed, mushroom)
    fitted = {}
    for view in mushroom.segment_specs():
        pipeline = build_pipeline(view, "logistic_regression", {"C": 1.0})
        pipeline.fit(model_input(cleaned, view), cleaned[mushroom.target.name].astype(str))
        fitted[str(view.segment)] = pipeline
    return fitted


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "lake")


@pytest.fixture
def router(mushroom, pipelines, store) -> ServingRuntime:
    options = ServingOptions(max_records=50)
    runtimes = {}
    for version, view in enumerate(mushroom.segment_specs(), start=3):
        log = PredictionLog(store, view, flush_interval_s=3600)
        runtimes[str(view.segment)] = SlotRuntime(
            view,
            pipelines[str(view.segment)],
            view.registered_model_name(),
            str(version),
            options,
            log=log,
        )
    return ServingRuntime(mushroom, runtimes)


def raw_records(landed: pd.DataFrame, mushroom: UseCaseSpec, n: int) -> list[dict[str, Any]]:
    """Landed rows as JSON records: every feature, nulls for missing values, no target."""
    rows = landed[mushroom.feature_names].head(n).astype(object)
    records = rows.to_dict("records")
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
        for r in records
    ]


def only(record: dict[str, Any], view: UseCaseSpec) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k in view.feature_names}


def answer(router: ServingRuntime, body: Any, columns: bool = False) -> tuple[int, dict]:
    call = router.answer_columns if columns else router.answer
    result = asyncio.run(call(body, "req-1"))
    return result.status, json.loads(result.body)


def chosen(fields: list[str], spec: UseCaseSpec) -> str | None:
    """The segment of the slot chosen for these fields, or ``None`` when no slot takes them."""
    view = choose_slot(fields, spec)
    return None if view is None else view.segment


def test_choose_segment_by_fields_carried(mushroom) -> None:
    stem = mushroom.segment_spec("stem_season").feature_names
    assert chosen(CAP_GILL, mushroom) == "cap_gill"
    assert chosen(stem, mushroom) == "stem_season"
    # Every field: the first segment in spec order.
    assert chosen(mushroom.feature_names, mushroom) == "cap_gill"
    assert chosen(CAP_GILL[:-1] + stem[:-1], mushroom) is None
    missing = missing_by_slot(CAP_GILL[:-1] + stem[:-1], mushroom)
    assert missing == {"cap_gill": ["gill-color"], "stem_season": ["season"]}


def test_route_records_groups_and_problems(mushroom) -> None:
    stem = mushroom.segment_spec("stem_season").feature_names
    records = [
        dict.fromkeys(CAP_GILL),
        dict.fromkeys(stem),
        dict.fromkeys(CAP_GILL[1:]),
        "not a record",
    ]
    groups, problems = route_records(records, mushroom)
    assert groups == {"cap_gill": [0], "stem_season": [1]}
    assert [p.location for p in problems] == ["records[2]", "records[3]"]
    assert "cap_gill needs cap-diameter" in problems[0].message
    assert "stem_season needs stem-height" in problems[0].message


def test_cap_gill_records_are_answered_by_the_cap_gill_model(router, landed, mushroom) -> None:
    view = mushroom.segment_spec("cap_gill")
    records = [only(r, view) for r in raw_records(landed, mushroom, 3)]
    status, body = answer(router, records)
    assert status == 200, body
    assert body["segments"] == ["cap_gill"] * 3
    assert (body["model_name"], body["model_version"]) == ("mushroom__cap_gill", "3")
    assert body["models"] == {
        "cap_gill": {"model_name": "mushroom__cap_gill", "model_version": "3"}
    }
    assert set(body["predictions"]) <= {"e", "p"}
    assert all(abs(sum(p.values()) - 1) < 1e-6 for p in body["probabilities"])


def test_stem_season_records_are_answered_by_the_stem_season_model(
    router, landed, mushroom
) -> None:
    view = mushroom.segment_spec("stem_season")
    records = [only(r, view) for r in raw_records(landed, mushroom, 2)]
    status, body = answer(router, records)
    assert status == 200, body
    assert body["segments"] == ["stem_season"] * 2
    assert body["model_name"] == "mushroom__stem_season"


def test_mixed_request_keeps_record_order(router, landed, mushroom, pipelines, store) -> None:
    cap, stem = mushroom.segment_spec("cap_gill"), mushroom.segment_spec("stem_season")
    full = raw_records(landed, mushroom, 4)
    records = [only(full[0], stem), only(full[1], cap), full[2], only(full[3], stem)]
    status, body = answer(router, records)
    assert status == 200, body
    assert body["segments"] == ["stem_season", "cap_gill", "cap_gill", "stem_season"]
    assert set(body["models"]) == {"cap_gill", "stem_season"}
    assert body["model_name"] == "mushroom__cap_gill,mushroom__stem_season"
    # Each prediction is the one its segment's model makes for that record alone.
    for index, record in enumerate(records):
        segment = body["segments"][index]
        alone_status, alone = answer(router, [record])
        assert alone_status == 200
        assert alone["predictions"] == [body["predictions"][index]]
        assert alone["probabilities"][0] == pytest.approx(body["probabilities"][index])
        assert alone["segments"] == [segment]
    router.close()
    logged = read_prediction_log(store, mushroom.name)
    assert set(logged["model_name"]) == {"mushroom__cap_gill", "mushroom__stem_season"}


def test_record_of_no_segment_is_a_422_naming_missing_fields(router, landed, mushroom) -> None:
    cap = mushroom.segment_spec("cap_gill")
    good = only(raw_records(landed, mushroom, 1)[0], cap)
    partial = {k: v for k, v in good.items() if k != "gill-color"}
    status, body = answer(router, [good, partial])
    assert status == 422
    assert body["problem_count"] == 1
    assert body["detail"][0]["record"] == 1
    assert "cap_gill needs gill-color" in body["error"]
    assert "stem_season needs stem-height" in body["error"]


def test_segment_checks_apply_after_routing(router, landed, mushroom) -> None:
    """Unknown fields, then bad values, are reported at the record's position in the request."""
    cap, stem = mushroom.segment_spec("cap_gill"), mushroom.segment_spec("stem_season")
    full = raw_records(landed, mushroom, 3)
    records = [
        only(full[0], stem),
        {**only(full[1], cap), "cap-diameter": "wide"},
        {**only(full[2], stem), "colour": "red"},
    ]
    status, body = answer(router, records)
    assert status == 422
    assert [p.split(":")[0] for p in body["problems"]] == ["records[2].colour"]
    status, body = answer(router, records[:2])
    assert status == 422
    assert [p.split(":")[0] for p in body["problems"]] == ["records[1].cap-diameter"]


def test_domain_problem_of_one_segment_rejects_the_request(router, landed, mushroom) -> None:
    cap, stem = mushroom.segment_spec("cap_gill"), mushroom.segment_spec("stem_season")
    full = raw_records(landed, mushroom, 2)
    records = [only(full[0], cap), {**only(full[1], stem), "season": "x"}]
    status, body = answer(router, records)
    assert status == 422
    assert body["detail"][0]["record"] == 1
    assert body["detail"][0]["field"] == "season"


def test_a_rejected_mixed_request_scores_and_logs_nothing(router, landed, mushroom, store) -> None:
    """The cap_gill record is valid, but it is not scored while its neighbour is rejected."""
    cap, stem = mushroom.segment_spec("cap_gill"), mushroom.segment_spec("stem_season")
    full = raw_records(landed, mushroom, 2)
    status, _ = answer(router, [only(full[0], cap), {**only(full[1], stem), "season": "x"}])
    assert status == 422
    router.close()
    assert read_prediction_log(store, mushroom.name).empty


def test_a_service_narrowed_to_one_segment_routes_only_to_it(
    mushroom, pipelines, store, landed
) -> None:
    narrowed = served_segments(mushroom, ["stem_season"])
    assert narrowed.segment_names == ["stem_season"]
    view = narrowed.segment_spec("stem_season")
    runtime = SlotRuntime(
        view, pipelines["stem_season"], view.registered_model_name(), "4", ServingOptions()
    )
    router = ServingRuntime(narrowed, {"stem_season": runtime})
    full = raw_records(landed, mushroom, 2)
    status, body = answer(router, full)  # every field: would go to cap_gill if it were served
    assert status == 200, body
    assert body["segments"] == ["stem_season"] * 2
    cap = mushroom.segment_spec("cap_gill")
    status, body = answer(router, [only(full[0], cap)])
    assert status == 422
    assert "stem_season needs stem-height" in body["error"] and "cap_gill" not in body["error"]
    router.close()


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["gills"], "has no segment gills .segments: cap_gill, stem_season"),
    ],
)
def test_serving_an_unknown_segment_is_refused(mushroom, names, message) -> None:
    with pytest.raises(ValueError, match=message):
        served_segments(mushroom, names)
    with pytest.raises(ValueError, match="bigmart_sales has no segments"):
        served_segments(use_case_specs()["bigmart_sales"], ["stem_season"])
    assert served_segments(mushroom, []) is mushroom


@pytest.mark.parametrize("body", [[], {"records": 1}, "x"])
def test_request_shape_problems(router, body) -> None:
    status, answered = answer(router, body)
    assert status == 422
    assert answered["detail"][0]["record"] is None


def test_columns_body_is_routed_by_its_columns(router, landed, mushroom) -> None:
    stem = mushroom.segment_spec("stem_season")
    records = [only(r, stem) for r in raw_records(landed, mushroom, 3)]
    columns = {name: [r[name] for r in records] for name in stem.feature_names}
    status, body = answer(router, columns, columns=True)
    assert status == 200, body
    assert body["model_name"] == "mushroom__stem_season"
    assert len(body["predictions"]) == 3
    status, body = answer(router, {"season": ["a"]}, columns=True)
    assert status == 422
    assert "stem_season needs stem-height" in body["error"]


def test_router_needs_a_runtime_per_segment(router, mushroom) -> None:
    with pytest.raises(ValueError, match="a runtime is needed for every slot"):
        ServingRuntime(mushroom, {"cap_gill": router.slots["cap_gill"]})


def test_ids_follow_their_records_across_segments(store) -> None:
    """A use case with id columns: every segment needs the ids, and answers echo them in order."""
    import yaml

    from mlops_assets.generators import get_generator
    from mlops_assets.specs.catalog import BUNDLED_DIR, parse_spec
    from mlops_assets.training.families import build_pipeline

    instance = yaml.safe_load((BUNDLED_DIR / "bigmart_sales" / "defs.yaml").read_text())
    data = instance["attributes"]
    data["segments"] = [
        {"name": "item", "features": ["Item_Weight", "Item_Fat_Content", "Item_MRP"]},
        {"name": "outlet", "features": ["Outlet_Size", "Outlet_Type", "Outlet_Location_Type"]},
    ]
    spec = parse_spec(data)
    landed = get_generator("bigmart_sales").generate(300, dt.date(2025, 3, 1), seed=2)
    cleaned, _ = clean_frame(landed, spec)
    runtimes = {}
    for view in spec.segment_specs():
        pipeline = build_pipeline(view, "ridge", {"alpha": 1.0})
        pipeline.fit(model_input(cleaned, view), cleaned[spec.target.name])
        runtimes[str(view.segment)] = SlotRuntime(
            view, pipeline, view.registered_model_name(), "1", ServingOptions(max_records=50)
        )
    router = ServingRuntime(spec, runtimes)
    raw = landed.head(3).astype(object).where(landed.head(3).notna(), None)
    ids = ["Item_Identifier", "Outlet_Identifier"]
    item = ids + spec.segment_spec("item").feature_names
    outlet = ids + spec.segment_spec("outlet").feature_names
    records = [
        raw.iloc[0][outlet].to_dict(),
        raw.iloc[1][item].to_dict(),
        raw.iloc[2][outlet].to_dict(),
    ]
    status, body = answer(router, records)
    assert status == 200, body
    assert body["segments"] == ["outlet", "item", "outlet"]
    assert body["ids"] == [{k: raw.iloc[i][k] for k in ids} for i in range(3)]
    without_id = {k: v for k, v in records[1].items() if k != "Item_Identifier"}
    status, body = answer(router, [without_id])
    assert status == 422
    assert "item needs Item_Identifier" in body["error"]
    router.close()
