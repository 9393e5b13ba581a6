"""Following the champion alias inside a worker: swaps between batches, failures keep serving.

The resolver and loader are plain functions here (the registry is faked); the real alias on a
real tracking server, with ``mlops serve`` answering throughout, is in ``test_follow_served.py``.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from mlops_assets.environment import ServingOptions
from mlops_assets.registry.status import ModelRef
from mlops_assets.serving.follow import ChampionFollower
from mlops_assets.serving.runtime import ServingRuntime, SlotRuntime
from mlops_assets.specs import UseCaseSpec
from mlops_assets_tests.harness.records import record


class ConstantModel:
    """A pipeline stand-in that predicts one number: tells which model answered."""

    def __init__(self, value: float) -> None:
        self.value = value

    def predict(self, frame: Any) -> Any:
        import numpy as np

        return np.full(len(frame), self.value)


@pytest.fixture
def runtime(spec: UseCaseSpec, fitted_pipeline: Any) -> ServingRuntime:
    slot = SlotRuntime(spec, fitted_pipeline, "bigmart_sales", "1", ServingOptions())
    return ServingRuntime(spec, {None: slot})


def answer(runtime: ServingRuntime, body: list[dict[str, Any]]) -> dict[str, Any]:
    result = asyncio.run(runtime.answer(body))
    assert result.status == 200, result.body
    return json.loads(result.body)


def test_check_swaps_when_the_alias_moves_and_not_otherwise(runtime: ServingRuntime) -> None:
    alias = {"ref": ModelRef("bigmart_sales", "1", "run1")}
    loaded: list[str] = []

    def load(ref: ModelRef) -> ConstantModel:
        loaded.append(ref.version)
        return ConstantModel(float(ref.version) * 100)

    follower = ChampionFollower(runtime.slots[None], 1.0, lambda: alias["ref"], load)
    assert follower.check() is None and loaded == []
    alias["ref"] = ModelRef("bigmart_sales", "2", "run2")
    assert follower.check() == "2"
    body = answer(runtime, [record()])
    assert (body["model_version"], body["predictions"]) == ("2", [200.0])
    assert follower.check() is None and loaded == ["2"]
    alias["ref"] = ModelRef("bigmart_sales", "1", "run1")  # a rollback
    assert follower.check() == "1"
    assert answer(runtime, [record()])["predictions"] == [100.0]


def test_a_failing_registry_keeps_the_current_model(runtime: ServingRuntime) -> None:
    calls = {"n": 0}

    def resolve() -> ModelRef:
        calls["n"] += 1
        if calls["n"] < 3:
            raise ConnectionError("tracking server unreachable")
        return ModelRef("bigmart_sales", "7", "run7")

    slot = runtime.slots[None]
    follower = ChampionFollower(slot, 0.05, resolve, lambda ref: ConstantModel(7.0))
    follower.start()
    try:
        deadline = time.monotonic() + 10
        while slot.model_version != "7" and time.monotonic() < deadline:
            assert answer(runtime, [record()])["model_version"] in {"1", "7"}
            time.sleep(0.02)
    finally:
        follower.stop()
    assert follower.failures == 2
    assert answer(runtime, [record()])["predictions"] == [7.0]


def test_answers_name_the_model_that_scored_them_during_swaps(
    runtime: ServingRuntime, spec: UseCaseSpec
) -> None:
    """Requests in flight while models are swapped are all answered, each by one model whose
    version and prediction agree."""

    slot = runtime.slots[None]

    async def scenario() -> list[dict[str, Any]]:
        async def swapper() -> None:
            for version in range(2, 40):
                slot.swap_model(ConstantModel(float(version)), "bigmart_sales", str(version))
                await asyncio.sleep(0)

        requests = [runtime.answer([record(), record()]) for _ in range(200)]
        results = await asyncio.gather(swapper(), *requests)
        return [json.loads(r.body) | {"status": r.status} for r in results[1:]]

    bodies = asyncio.run(scenario())
    assert {b["status"] for b in bodies} == {200}
    swapped = [b for b in bodies if b["model_version"] != "1"]
    assert swapped, "no request was answered by a swapped-in model"
    for body in swapped:
        assert body["predictions"] == [float(body["model_version"])] * 2
    assert slot.swaps == 38
