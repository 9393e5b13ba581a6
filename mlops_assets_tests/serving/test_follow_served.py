"""A running ``mlops serve`` follows the champion alias on the tracking server: after a promotion
and after a rollback it answers from the new champion within 60 s, with no failed request.

A second version (a different pipeline) is registered in the session's trained home; the alias is
moved to it and back while a client sends requests without pause. The first move loads the new
version from MLflow (it has no bento); the move back loads the original from the BentoML store.
The alias is restored and the extra version deleted afterwards, so the shared home is as it was.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from mlops_assets.environment import Environment
from mlops_assets.names import CHAMPION
from mlops_assets.serving.records import columns_of
from mlops_assets.serving.scoring import Scorer
from mlops_assets.specs import UseCaseSpec
from mlops_assets_tests.harness.bento import ServedBento
from mlops_assets_tests.harness.records import record

pytestmark = pytest.mark.integration

SWITCH_LIMIT_S = 60


@dataclass
class Traffic:
    """Requests sent one after another until stopped: status and version of every answer."""

    served: ServedBento
    answers: list[tuple[float, int, str | None, float | None]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            response = self.served.predict({"records": [record()]})
            body = response.json() if response.status_code == 200 else {}
            prediction = (body.get("predictions") or [None])[0]
            self.answers.append(
                (time.monotonic(), response.status_code, body.get("model_version"), prediction)
            )

    def wait_for_version(self, version: str, since: float) -> float:
        """Seconds from ``since`` to the first answer from ``version``."""
        deadline = since + SWITCH_LIMIT_S
        while time.monotonic() < deadline:
            for at, _, answered, _ in list(self.answers):
                if at >= since and answered == version:
                    return at - since
            time.sleep(0.2)
        raise AssertionError(f"no answer from v{version} within {SWITCH_LIMIT_S} s")


@pytest.fixture
def second_version(trained_home: Any, spec: UseCaseSpec, fitted_pipeline: Any) -> Iterator[str]:
    """A registered version holding another pipeline; deleted afterwards."""
    import mlflow
    import mlflow.sklearn

    tracking = Environment.from_env().tracking()
    tracking.activate("serving-switch-test")
    name = spec.registered_model_name()
    champion = str(tracking.alias_version(name, CHAMPION).version)
    with mlflow.start_run(run_name="second-version"):
        info = mlflow.sklearn.log_model(
            fitted_pipeline,
            name="model",
            registered_model_name=name,
            serialization_format="cloudpickle",
        )
    version = str(info.registered_model_version)
    try:
        yield version
    finally:
        tracking.client().set_registered_model_alias(name, CHAMPION, champion)
        tracking.client().delete_model_version(name, version)


def test_serve_switches_to_promoted_and_rolled_back_champions(
    bento_server: ServedBento,
    second_version: str,
    spec: UseCaseSpec,
    fitted_pipeline: Any,
) -> None:
    """The shared server (``mlops serve``, alias polled every second) follows both moves."""
    tracking = Environment.from_env().tracking()
    name = spec.registered_model_name()
    original = str(tracking.alias_version(name, CHAMPION).version)
    offline = Scorer(spec, fitted_pipeline, name, second_version)
    expected_new = offline.score_requests([columns_of([record()], spec)], ["offline"])[0]
    expected_new = expected_new.predictions[0]

    served = bento_server
    traffic = Traffic(served)
    client = threading.Thread(target=traffic.run, daemon=True)
    client.start()
    try:
        traffic.wait_for_version(original, since=time.monotonic() - 1)
        promoted_at = time.monotonic()
        tracking.client().set_registered_model_alias(name, CHAMPION, second_version)
        to_new = traffic.wait_for_version(second_version, since=promoted_at)
        rolled_back_at = time.monotonic()
        tracking.client().set_registered_model_alias(name, CHAMPION, original)
        to_old = traffic.wait_for_version(original, since=rolled_back_at)
        time.sleep(1)
    finally:
        traffic.stop.set()
        client.join(timeout=60)

    assert to_new < SWITCH_LIMIT_S and to_old < SWITCH_LIMIT_S
    statuses = {status for _, status, _, _ in traffic.answers}
    assert statuses == {200}, f"failed requests during the switch: {statuses}"
    versions = [v for _, _, v, _ in traffic.answers]
    changes = [b for a, b in zip(versions, versions[1:], strict=False) if a != b]
    assert changes == [second_version, original], "the service flapped between versions"
    new_predictions = [p for _, _, v, p in traffic.answers if v == second_version]
    assert new_predictions and all(p == pytest.approx(expected_new) for p in new_predictions)
    assert "now serving" in served.log_path.read_text()
