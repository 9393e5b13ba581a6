"""Quality outcomes as Dagster asset checks: specs (blocking) and results, and asset metadata.

The checks of ``raw_data`` and ``clean_data`` judge each partition of a run on its own (a
quality verdict per day, which training honours); the check result of the run passes only if
every day passed, and its metadata names the failing days and why.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg

from mlops_assets.components.resources import AlertWebhookResource
from mlops_assets.features.quality import WARN, CheckOutcome
from mlops_assets.metrics import significant
from mlops_assets.monitoring.alerts import day_rejected
from mlops_assets.specs.model import UseCaseSpec

REPORT_KEYS = {"report"}
"""Metadata keys whose values are paths to open (a drift report)."""


def check_specs(
    key: dg.AssetKey, checks: Mapping[str, str], blocking: bool = True
) -> list[dg.AssetCheckSpec]:
    """Check specs: a failed blocking check stops the rest of its run; a warning does not."""
    return [
        dg.AssetCheckSpec(name, asset=key, description=description, blocking=blocking)
        for name, description in checks.items()
    ]


def metadata_value(key: str, value: Any) -> Any:
    """A metadata value as the UI shows it: JSON, a path, or a number rounded for people.

    Structures become JSON, a report's key a path, and a fractional number is rounded to 4
    significant digits (still a number: the UI plots it).
    """
    if isinstance(value, dg.MetadataValue):  # already typed (a record: a tuple underneath)
        return value
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        return significant(float(value))
    if isinstance(value, dict | list | tuple):
        return dg.MetadataValue.json(list(value) if isinstance(value, tuple) else value)
    if key in REPORT_KEYS and isinstance(value, str):
        return dg.MetadataValue.path(value)
    return value


def as_metadata(values: Mapping[str, Any]) -> dict[str, Any]:
    """Plain values as asset metadata (see :func:`metadata_value`).

    Every asset's numbers go through here, so people read ``rmse 1591`` rather than
    ``1591.1414027022909``.
    """
    return {k: metadata_value(k, v) for k, v in values.items()}


def check_results(
    key: dg.AssetKey, per_day: Mapping[str, Sequence[CheckOutcome]]
) -> list[dg.AssetCheckResult]:
    """One result per check over a run's days, with each day's numbers in the metadata.

    A one-day run reports that day's outcome as it is; a range reports how many days failed,
    which ones and why (the first few), and the numbers of the first failing day.
    """
    names = [o.name for outcomes in per_day.values() for o in outcomes]
    results = []
    for name in dict.fromkeys(names):
        outcomes = {day: o for day, found in per_day.items() for o in found if o.name == name}
        failed = {day: o for day, o in outcomes.items() if not o.passed}
        shown = next(iter(failed.values()), None) or next(iter(outcomes.values()))
        metadata = as_metadata(shown.metadata)
        if len(outcomes) == 1:
            description = shown.summary
        else:
            metadata["days_checked"] = len(outcomes)
            metadata["days_failed"] = len(failed)
            metadata["failed_days"] = dg.MetadataValue.json(
                {day: o.summary for day, o in list(failed.items())[:50]}
            )
            description = (
                f"{len(failed)} of {len(outcomes)} days failed; first "
                f"{next(iter(failed))}: {shown.summary}"
                if failed
                else f"all {len(outcomes)} days passed"
            )
        warning = shown.severity == WARN
        results.append(
            dg.AssetCheckResult(
                asset_key=key,
                check_name=name,
                passed=not failed,
                description=description,
                metadata=metadata,
                severity=dg.AssetCheckSeverity.WARN if warning else dg.AssetCheckSeverity.ERROR,
            )
        )
    return results


def alert_rejected_days(
    alerts: AlertWebhookResource,
    spec: UseCaseSpec,
    key: dg.AssetKey,
    per_day: Mapping[str, Sequence[CheckOutcome]],
    context: dg.AssetExecutionContext,
) -> None:
    """Alert on the days of a run whose blocking checks failed (if a webhook is set).

    A warning (a null rate, a shift) never rejects a day, so it sends nothing here.
    """
    failed = {
        day: [f"{o.name}: {o.summary}" for o in blocking]
        for day, outcomes in per_day.items()
        if (blocking := [o for o in outcomes if not o.passed and o.severity != WARN])
    }
    if failed:
        alert = day_rejected(spec, key.path[-1], failed, context.run_id)
        alerts.send(alert, context.log.warning)
