"""Alerts reach a webhook as JSON, and a webhook that fails never fails the run.

A local receiver (``http.server`` in a thread) stands for the webhook: each test points
``MLOPS_ALERT_WEBHOOK`` (or the sender) at it and reads what arrived.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets.monitoring.alerts import (
    Alert,
    AlertWebhook,
    threshold_alert,
    where,
)
from mlops_assets.monitoring.summary import DaySummary, SlotSummary
from mlops_assets.specs import use_case_specs
from mlops_assets_tests.harness.webhook import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


def test_an_alert_is_posted_as_json(receiver: Receiver) -> None:
    alert = Alert("promotion", "bigmart_sales", "v3 promoted", {"version": "3"}, None, "run-1")
    assert AlertWebhook(receiver.url).send(alert) is True
    [body] = receiver.received
    assert body["_content_type"] == "application/json"
    assert body["text"] == "[mlops] v3 promoted"
    assert body["kind"] == "promotion" and body["use_case"] == "bigmart_sales"
    assert body["details"] == {"version": "3"} and body["dagster_run_id"] == "run-1"
    assert set(body) - {"_content_type"} == {
        "text",
        "source",
        "kind",
        "use_case",
        "segment",
        "dagster_run_id",
        "at",
        "details",
    }


def test_a_failure_to_deliver_is_logged_never_raised(receiver: Receiver) -> None:
    alert = Alert("rollback", "bigmart_sales", "rolled back")
    logged: list[str] = []
    receiver.status = 500
    assert AlertWebhook(receiver.url).send(alert, logged.append) is False
    receiver.close()
    assert AlertWebhook(receiver.url, timeout_s=1).send(alert, logged.append) is False
    assert AlertWebhook("file:///etc/passwd").send(alert, logged.append) is False
    assert len(logged) == 3
    assert all("secret-token" not in line for line in logged)  # the URL's path is a secret
    assert "not delivered to http://127.0.0.1" in logged[0] and "500" in logged[0]
    assert AlertWebhook(None).send(alert, logged.append) is False and len(logged) == 3
    assert where("https://hooks.example.com/services/T0/B0/xyz") == "https://hooks.example.com"


def test_drift_and_degradation_past_the_thresholds() -> None:
    spec = use_case_specs()["bigmart_sales"]

    def day(name: str, degradation: float, psi: float) -> DaySummary:
        slot = SlotSummary(
            None, "1", "scored out of sample", "rmse", 1000.0, degradation, 300.0, psi, "Item_MRP"
        )
        return DaySummary(name, [slot])

    assert threshold_alert(spec, [day("2026-11-01", 0.05, 0.1)], "r") is None
    drift = threshold_alert(spec, [day("2026-11-01", 0.05, 0.1), day("2026-11-02", 0.05, 4.7)], "r")
    assert drift is not None and drift.kind == "drift"
    assert drift.text == "bigmart_sales: PSI of Item_MRP on 2026-11-02 is 4.700 (Y=0.2)"
    both = threshold_alert(spec, [day("2026-11-02", 0.5, 4.7), day("2026-11-03", 0.6, 4.8)], "r")
    assert both is not None and both.kind == "degradation"
    assert both.details["days"] == ["2026-11-02", "2026-11-03"]
    assert "(2 days of this run past a threshold)" in both.text


def test_a_rejected_day_is_alerted(
    mlops_home: Path, tmp_path: Path, receiver: Receiver, monkeypatch
) -> None:
    """A file missing the spec's columns fails ``raw_data``'s blocking schema check."""
    from mlops_assets.cli import main

    monkeypatch.setenv("MLOPS_ALERT_WEBHOOK", receiver.url)
    source = tmp_path / "Train.csv"
    source.write_text("Item_Identifier,Item_MRP\n" + "FDA15,249.8\n" * 20)
    assert main(["land", "bigmart_sales", str(source), "--date", "2025-03-04"]) == 0
    assert main(["refresh", "bigmart_sales", "--no-train"]) == 1
    [body] = receiver.received
    assert body["kind"] == "day_rejected" and body["use_case"] == "bigmart_sales"
    assert body["text"].startswith("[mlops] bigmart_sales: raw_data of 2025-03-04 rejected: schema")
    assert list(body["details"]["days"]) == ["2025-03-04"]


def test_a_failed_run_is_alerted_by_the_run_failure_sensor(
    mlops_home: Path, receiver: Receiver, monkeypatch
) -> None:
    from mlops_assets import names
    from mlops_assets.components.alerts import build_run_failure_alerts
    from mlops_assets.components.resources import AlertWebhookResource

    @dg.op
    def broken() -> None:
        raise ValueError("the source is gone")

    @dg.job(name="bigmart_sales__ingest")
    def job() -> None:
        broken()

    sensor = build_run_failure_alerts()
    assert sensor.name == names.RUN_FAILURE_SENSOR
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(instance=instance, raise_on_error=False)
        failure = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
        for url in (None, receiver.url):
            context = dg.build_run_status_sensor_context(
                sensor_name=sensor.name,
                dagster_event=failure,
                dagster_instance=instance,
                dagster_run=result.dagster_run,
                resources={"alerts": AlertWebhookResource(url=url)},
            ).for_run_failure()
            sensor(context)
    [body] = receiver.received  # nothing without a webhook, one alert with it
    assert body["kind"] == "run_failed" and body["use_case"] == "bigmart_sales"
    assert body["text"] == (
        f"[mlops] bigmart_sales__ingest failed (run {result.run_id[:8]}): "
        "broken: ValueError: the source is gone"
    )
    assert body["details"]["errors"] == ["broken: ValueError: the source is gone"]
