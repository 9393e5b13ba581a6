"""The request path of a worker without a server: answers, rejections and the log."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from mlops_assets.environment import ServingOptions
from mlops_assets.prediction_log import PredictionLog, read_prediction_log
from mlops_assets.serving.runtime import ServingRuntime, SlotRuntime
from mlops_assets.specs import UseCaseSpec
from mlops_assets.storage.objectstore import LocalObjectStore
from mlops_assets_tests.harness.records import record


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "lake")


@pytest.fixture
def runtime(spec: UseCaseSpec, fitted_pipeline: Any, store: LocalObjectStore) -> ServingRuntime:
    log = PredictionLog(store, spec, flush_interval_s=3600)
    options = ServingOptions(max_records=50)
    slot = SlotRuntime(spec, fitted_pipeline, "bigmart_sales", "4", options, log=log)
    return ServingRuntime(spec, {None: slot})


def answers(runtime: ServingRuntime, *bodies: Any) -> list[tuple[int, dict]]:
    async def run() -> list[tuple[int, dict]]:
        results = await asyncio.gather(
            *[runtime.answer(b, f"req-{i}") for i, b in enumerate(bodies)]
        )
        return [(a.status, json.loads(a.body)) for a in results]

    return asyncio.run(run())


def test_concurrent_answers_and_their_log(runtime, store, spec) -> None:
    bodies = [[record()], [record(), record(Item_Identifier="FDB01")], [record(Item_MRP="x")]]
    results = answers(runtime, *bodies)
    assert [status for status, _ in results] == [200, 200, 422]
    ok = results[1][1]
    assert (ok["model_name"], ok["model_version"], ok["request_id"]) == (
        "bigmart_sales",
        "4",
        "req-1",
    )
    assert len(ok["predictions"]) == 2
    assert ok["ids"][1] == {"Item_Identifier": "FDB01", "Outlet_Identifier": "OUT049"}
    bad = results[2][1]
    assert bad["error"] == "records[0].Item_MRP: expected a number, got string 'x'"
    assert bad["detail"] == [
        {"record": 0, "field": "Item_MRP", "message": "expected a number, got string 'x'"}
    ]
    runtime.close()
    logged = read_prediction_log(store, spec.name)
    assert sorted(logged["request_id"]) == ["req-0", "req-1", "req-1"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ([], "records: is empty"),
        ([record()] * 51, "records: has 51 records; at most 50 per request"),
        ({"Item_MRP": 1}, "records: expected a list of records, got an object"),
        ([record(Extra=1)], "records[0].Extra: unknown field"),
    ],
)
def test_bad_requests_are_422(runtime, body: Any, expected: str) -> None:
    [(status, answer)] = answers(runtime, body)
    assert status == 422 and answer["error"].startswith(expected)
    runtime.close()


def test_options_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_SERVING_MAX_RECORDS", "12")
    monkeypatch.setenv("MLOPS_PREDICTION_LOG", "off")
    monkeypatch.setenv("MLOPS_SERVE_SEGMENTS", " stem_season, cap_gill ")
    options = ServingOptions.from_env()
    assert (options.max_records, options.prediction_log) == (12, False)
    assert options.segments == ("stem_season", "cap_gill")
    monkeypatch.setenv("MLOPS_SERVING_WORKERS", "two")
    with pytest.raises(ValueError, match="MLOPS_SERVING_WORKERS"):
        ServingOptions.from_env()


def test_columnar_bodies_answer_like_records(runtime, spec) -> None:
    records = [record(), record(Item_Identifier="FDB01", Item_MRP="120.5")]
    columns = {c.name: [r[c.name] for r in records] for c in spec.input_columns}

    async def run() -> tuple[dict, dict]:
        by_records = await runtime.answer(records, "a")
        by_columns = await runtime.answer_columns(columns, "b")
        return json.loads(by_records.body), json.loads(by_columns.body)

    as_records, as_columns = asyncio.run(run())
    assert as_columns["predictions"] == as_records["predictions"]
    assert as_columns["ids"] == {
        "Item_Identifier": ["FDA15", "FDB01"],
        "Outlet_Identifier": ["OUT049"] * 2,
    }
    runtime.close()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda c: c.pop("Item_MRP"), "columns.Item_MRP: is missing"),
        (lambda c: c.update(Extra=[1, 2]), "columns.Extra: unknown column"),
        (lambda c: c.update(Item_MRP=5), "columns.Item_MRP: expected an array, got number 5"),
        (lambda c: c["Item_MRP"].append(1.0), "columns: columns differ in length"),
        (lambda c: c.update(Item_MRP=[1.0, "cheap"]), "columns.Item_MRP[1]: expected a number"),
        (
            lambda c: c.update(Outlet_Type=["Spaceport", None]),
            "columns.Outlet_Type[0]: 'Spaceport'",
        ),
    ],
)
def test_bad_columnar_bodies_are_422(runtime, spec, change, expected: str) -> None:
    columns = {c.name: [record()[c.name]] * 2 for c in spec.input_columns}
    change(columns)
    answer = asyncio.run(runtime.answer_columns(columns, "x"))
    assert answer.status == 422 and json.loads(answer.body)["error"].startswith(expected)
    runtime.close()
