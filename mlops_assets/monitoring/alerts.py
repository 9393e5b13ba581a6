"""Alerts: a JSON ``POST`` to an optional webhook when something needs a person.

Sent on a failed run (the run failure sensor), a rejected day (a failed blocking quality check),
a promotion (the gate) or a rollback, and drift or degradation past the retraining policy's
thresholds (monitoring). The webhook is ``MLOPS_ALERT_WEBHOOK`` (unset: no alerts). The body is
one JSON object::

    {"text": "[mlops] bigmart_sales: v3 promoted (was v2): ...",
     "source": "mlops-assets", "kind": "promotion", "use_case": "bigmart_sales",
     "segment": null, "dagster_run_id": "9f1c...", "at": "2026-11-23T23:59:59+00:00",
     "details": {...}}

``text`` is the line a person reads (chat webhooks such as Slack's or Mattermost's show it as
the message); ``kind`` is one of :data:`KINDS`; ``details`` depends on the kind. Delivery has a
short timeout and never raises: a failure to deliver is logged (without the URL's path, which
often holds a token) and the run goes on.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlops_assets.monitoring.policy import breaches
from mlops_assets.monitoring.summary import DaySummary
from mlops_assets.specs.model import UseCaseSpec

KINDS = ("run_failed", "day_rejected", "promotion", "rollback", "drift", "degradation")
TIMEOUT_S = 5.0
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Alert:
    """Something a person should know now."""

    kind: str
    use_case: str | None
    text: str
    details: dict[str, Any] = field(default_factory=dict)
    segment: str | None = None
    dagster_run_id: str | None = None
    at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))

    def body(self) -> dict[str, Any]:
        """The JSON object posted (see the module docstring)."""
        return {
            "text": f"[mlops] {self.text}",
            "source": "mlops-assets",
            "kind": self.kind,
            "use_case": self.use_case,
            "segment": self.segment,
            "dagster_run_id": self.dagster_run_id,
            "at": self.at,
            "details": self.details,
        }


def where(url: str) -> str:
    """A webhook URL as a log line may show it: scheme and host only (its path is a secret)."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}" if parts.scheme else "(unparsable URL)"


class AlertWebhook:
    """Posts alerts to one webhook; without a URL, does nothing.

    Args:
        url: The webhook (``MLOPS_ALERT_WEBHOOK``), or ``None``.
        timeout_s: Seconds to wait for the webhook to answer.
    """

    def __init__(self, url: str | None, timeout_s: float = TIMEOUT_S) -> None:
        self.url = url or None
        self.timeout_s = timeout_s

    @property
    def enabled(self) -> bool:
        """Whether a webhook is configured."""
        return self.url is not None

    def send(self, alert: Alert, log: Callable[[str], None] | None = None) -> bool:
        """Post ``alert``; whether the webhook answered 2xx. Never raises: failures are logged."""
        if self.url is None:
            return False
        if urllib.parse.urlsplit(self.url).scheme not in {"http", "https"}:
            (log or logger.warning)(f"alert {alert.kind} not sent: the webhook is not http(s)")
            return False
        data = json.dumps(alert.body(), default=str).encode()
        request = urllib.request.Request(
            self.url,
            data=data,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "mlops-assets-alerts"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                response.read()
                return True
        except Exception as error:  # noqa: BLE001 - an alert must never fail the run
            (log or logger.warning)(
                f"alert {alert.kind} ({alert.use_case}) not delivered to {where(self.url)}: "
                f"{type(error).__name__}: {error}"
            )
            return False


# ---------------------------------------------------------------- the alerts


def run_failed(
    use_case: str | None, job: str, run_id: str, errors: Sequence[str], launched_by: str = ""
) -> Alert:
    """A run that failed, with its failed steps' innermost errors."""
    first = errors[0] if errors else "no step failed (the run itself did)"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return Alert(
        "run_failed",
        use_case,
        f"{job} failed (run {run_id[:8]}): {first[:300]}{more}",
        {"job": job, "errors": [e[:2000] for e in errors[:20]], "launched_by": launched_by},
        dagster_run_id=run_id,
    )


def day_rejected(
    spec: UseCaseSpec, asset: str, failed: Mapping[str, Sequence[str]], run_id: str
) -> Alert:
    """Days whose blocking quality checks failed: ``failed`` is day -> the failed checks' words."""
    days = sorted(failed)
    first = days[0]
    shown = "; ".join(failed[first])[:300]
    more = f" (and {len(days) - 1} more days)" if len(days) > 1 else ""
    return Alert(
        "day_rejected",
        spec.name,
        f"{spec.name}: {asset} of {first} rejected: {shown}{more}",
        {"asset": asset, "days": {day: list(failed[day]) for day in days[:50]}},
        dagster_run_id=run_id,
    )


def promotion(
    spec: UseCaseSpec, version: str, previous: str | None, reason: str, run_id: str
) -> Alert:
    """The gate moved the champion alias."""
    was = f" (was v{previous})" if previous else " (the first champion)"
    return Alert(
        "promotion",
        spec.name,
        f"{spec.registered_model_name()}: v{version} promoted{was}: {reason}",
        {"model_name": spec.registered_model_name(), "version": version, "previous": previous},
        segment=spec.segment,
        dagster_run_id=run_id,
    )


def rollback(spec: UseCaseSpec, version: str, previous: str, run_id: str | None = None) -> Alert:
    """Someone moved the champion back."""
    return Alert(
        "rollback",
        spec.name,
        f"{spec.registered_model_name()}: rolled back from v{previous} to v{version}",
        {"model_name": spec.registered_model_name(), "version": version, "previous": previous},
        segment=spec.segment,
        dagster_run_id=run_id,
    )


def threshold_alert(
    spec: UseCaseSpec, summaries: Sequence[DaySummary], run_id: str
) -> Alert | None:
    """Drift or degradation past the policy's thresholds on the run's days (``None``: none).

    One alert per monitoring run: the latest day past a threshold, and how many days were.
    """
    found = [(s.day, b) for s in summaries if (b := breaches(spec, s))]
    if not found:
        return None
    day, latest = found[-1]
    kind = "degradation" if any(k == "degradation" for k, _ in latest) else "drift"
    days = f" ({len(found)} days of this run past a threshold)" if len(found) > 1 else ""
    policy = spec.retraining
    return Alert(
        kind,
        spec.name,
        f"{spec.name}: " + "; ".join(words for _, words in latest) + days,
        {
            "day": day,
            "breaches": [{"kind": k, "text": words} for k, words in latest],
            "days": [d for d, _ in found],
            "max_metric_degradation": policy.max_metric_degradation,
            "max_psi": policy.max_psi,
        },
        dagster_run_id=run_id,
    )
