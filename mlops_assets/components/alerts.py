"""The run failure sensor: every failed run of the location posted to the alert webhook.

The other alerts are sent where their event happens (a rejected day by ``raw_data`` and
``clean_data``, a promotion by the gate, drift and degradation by monitoring, a rollback by
``mlops rollback``); a failed run is known only once it has failed, so Dagster's run failure
sensor posts it, from the daemon (``make dev`` or a deployment). Runs ``mlops`` executes in
process are recorded in the same instance, so the sensor posts their failures too once the
daemon runs.
"""

from __future__ import annotations

import dagster as dg

from mlops_assets import names
from mlops_assets.components.resources import AlertWebhookResource
from mlops_assets.monitoring.alerts import run_failed


def failure_messages(context: dg.RunFailureSensorContext) -> list[str]:
    """Each failed step with its innermost error (Dagster's own message says "error in op")."""
    messages = []
    for event in context.get_step_failure_events():
        error = event.step_failure_data.error
        while error is not None and error.cause is not None:
            error = error.cause
        text = error.message.strip() if error is not None else "failed"
        messages.append(f"{event.step_key}: {text}")
    if not messages and context.failure_event.message:
        messages.append(context.failure_event.message)
    return messages


def build_run_failure_alerts() -> dg.SensorDefinition:
    """The location's run failure sensor (on by default; it posts only with a webhook set)."""

    @dg.run_failure_sensor(
        name=names.RUN_FAILURE_SENSOR,
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
        description="Posts every failed run of this location to MLOPS_ALERT_WEBHOOK (if set).",
    )
    def run_failure_alerts(context: dg.RunFailureSensorContext, alerts: AlertWebhookResource):
        if alerts.url is None:
            return dg.SkipReason("MLOPS_ALERT_WEBHOOK is not set")
        run = context.dagster_run
        alert = run_failed(
            names.job_use_case(run.job_name),
            run.job_name,
            run.run_id,
            failure_messages(context),
            run.tags.get(names.LAUNCHED_BY_TAG, ""),
        )
        alerts.send(alert, context.log.warning)
        return None

    return run_failure_alerts
