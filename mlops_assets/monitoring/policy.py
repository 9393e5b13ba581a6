"""The retraining policy: retrain when data piles up, a champion's error grows, or data drifts.

Any one of the spec's conditions fires a run of the use case's retrain job (splits, tuning,
gate, bento), tagged with every reason that held and with K, X and Y, so the run and the ledger
say why it happened:

- K: ``retraining.new_partitions`` clean days stored after the last training window;
- X: a slot's champion is worse on a day than its test score by more than
  ``retraining.max_metric_degradation`` (relative), and by more than
  ``retraining.min_metric_change`` in the metric's units (a near-zero reference makes any
  relative change large);
- Y: a feature's PSI on a day is above ``retraining.max_psi`` for a slot's champion.

Drift and degradation are ignored for ``retraining.cooldown_days`` days after the last training
window: the reference of both moves slowly, and without a pause a lasting shift would retrain
every day. The facts come from storage and the last training run (:class:`PolicyFacts`); the
evaluation is pure, so each condition is tested without Dagster.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass

from mlops_assets import names
from mlops_assets.monitoring.summary import DaySummary
from mlops_assets.specs.model import UseCaseSpec


@dataclass(frozen=True)
class Evidence:
    """One condition of the policy that holds, and the data that shows it."""

    kind: str  # "new_partitions", "degradation", "drift"
    reason: str
    token: str  # identifies the evidence, so the same evidence never fires twice


@dataclass(frozen=True)
class PolicyFacts:
    """What the policy judges: the last training, the stored clean days, the latest summary."""

    last_training_day: str | None
    trained_by: str  # the run that built the last training set ("never" before any)
    clean_days: list[str]
    latest: DaySummary | None


def cooling_down(evidence_day: str | None, last_day: str | None, cooldown_days: int) -> bool:
    """Whether evidence from ``evidence_day`` falls within the cool-down after a training."""
    if not evidence_day or not last_day:
        return False
    gap = dt.date.fromisoformat(evidence_day) - dt.date.fromisoformat(last_day)
    return gap.days <= cooldown_days


def _slot_label(segment: str | None) -> str:
    return f" ({segment})" if segment else ""


def policy_evidence(spec: UseCaseSpec, facts: PolicyFacts) -> list[Evidence]:
    """Every condition of the policy that holds for these facts."""
    policy = spec.retraining
    last_day, trained_by = facts.last_training_day, facts.trained_by
    evidence: list[Evidence] = []
    new_days = [d for d in sorted(facts.clean_days) if last_day is None or d > last_day]
    if len(new_days) >= policy.new_partitions:
        since = f"since {last_day}" if last_day else "and no model trained yet"
        evidence.append(
            Evidence(
                "new_partitions",
                f"{len(new_days)} new partitions {since} (K={policy.new_partitions})",
                f"{trained_by}:k",
            )
        )
    summary = facts.latest
    if summary is None or cooling_down(summary.day, last_day, policy.cooldown_days):
        return evidence
    day = summary.day
    worse = [
        s
        for s in summary.slots
        if s.degradation is not None
        and s.degradation > policy.max_metric_degradation
        and (s.metric_change is None or s.metric_change > policy.min_metric_change)
    ]
    if worse:
        slot = max(worse, key=lambda s: s.degradation or 0.0)
        evidence.append(
            Evidence(
                "degradation",
                f"{slot.metric}{_slot_label(slot.segment)} on {day} is {slot.degradation:.1%} "
                f"worse than the champion's test score (X={policy.max_metric_degradation:.0%})",
                f"{trained_by}:x:{day}",
            )
        )
    drifted = [s for s in summary.slots if s.max_psi is not None and s.max_psi > policy.max_psi]
    if drifted:
        slot = max(drifted, key=lambda s: s.max_psi or 0.0)
        evidence.append(
            Evidence(
                "drift",
                f"PSI of {slot.max_psi_feature}{_slot_label(slot.segment)} on {day} is "
                f"{slot.max_psi:.3f} (Y={policy.max_psi})",
                f"{trained_by}:y:{day}",
            )
        )
    return evidence


def cooldown_end(last_day: str | None, cooldown_days: int) -> str | None:
    """The last day whose drift and degradation the cool-down after a training ignores."""
    if not last_day:
        return None
    return (dt.date.fromisoformat(last_day) + dt.timedelta(days=cooldown_days)).isoformat()


def breaches(spec: UseCaseSpec, summary: DaySummary) -> list[tuple[str, str]]:
    """What on a day is past the policy's thresholds, cool-down aside: ``(kind, words)`` pairs.

    ``kind`` is ``degradation`` (X) or ``drift`` (Y). What monitoring alerts on; the policy
    fires on the same thresholds unless cooling down.
    """
    policy = spec.retraining
    found = []
    for s in summary.slots:
        label = _slot_label(s.segment)
        change_ok = s.metric_change is None or s.metric_change > policy.min_metric_change
        if s.degradation is not None and s.degradation > policy.max_metric_degradation:
            if change_ok:
                found.append(
                    (
                        "degradation",
                        f"{s.metric}{label} on {summary.day} is {s.degradation:.1%} worse than "
                        f"the champion's test score (X={policy.max_metric_degradation:.0%})",
                    )
                )
        if s.max_psi is not None and s.max_psi > policy.max_psi:
            found.append(
                (
                    "drift",
                    f"PSI of {s.max_psi_feature}{label} on {summary.day} is {s.max_psi:.3f} "
                    f"(Y={policy.max_psi})",
                )
            )
    return found


def policy_explanation(
    spec: UseCaseSpec, facts: PolicyFacts, fired: Collection[str] = ()
) -> list[str]:
    """Why no condition fires now, one phrase per condition (a sensor tick's skip reason).

    E.g. ``2 of 7 new days since 2026-11-06``, ``cooldown until 2026-11-09``,
    ``degradation 3.1% <= 20% (rmse on 2026-11-12)``, ``drift 0.052 <= 0.25 (Item_MRP on
    2026-11-12)``; evidence that holds but already requested its retrain (a token in
    ``fired``, the sensor's cursor) says so.
    """
    policy = spec.retraining
    last_day = facts.last_training_day
    held = {e.kind: e for e in policy_evidence(spec, facts)}
    said: list[str] = []

    def already(kind: str) -> bool:
        evidence = held.get(kind)
        if evidence is not None and evidence.token in fired:
            said.append(f"{evidence.reason}: already requested a retrain")
            return True
        return False

    new_days = [d for d in facts.clean_days if last_day is None or d > last_day]
    if not already("new_partitions"):
        since = f"since {last_day}" if last_day else "(no model trained yet)"
        said.append(f"{len(new_days)} of {policy.new_partitions} new days {since}")
    summary = facts.latest
    if summary is None:
        said.append("no monitored day yet (degradation and drift are judged once a champion is)")
        return said
    if cooling_down(summary.day, last_day, policy.cooldown_days):
        said.append(
            f"cooldown until {cooldown_end(last_day, policy.cooldown_days)} "
            f"({policy.cooldown_days} days after the training window ending {last_day}; "
            f"latest monitored day {summary.day})"
        )
        return said
    scored = [s for s in summary.slots if s.degradation is not None]
    if not already("degradation"):
        if not scored:
            statuses = ", ".join(sorted({s.status for s in summary.slots})) or "nothing judged"
            said.append(f"degradation not scored on {summary.day} ({statuses})")
        else:
            worst = max(scored, key=lambda s: s.degradation or 0.0)
            degraded = worst.degradation or 0.0
            where = f"{worst.metric}{_slot_label(worst.segment)} on {summary.day}"
            if degraded > policy.max_metric_degradation:  # the absolute change is too small
                said.append(
                    f"degradation {degraded:.1%} > {policy.max_metric_degradation:.0%} but a "
                    f"change of {worst.metric_change:.4g} <= {policy.min_metric_change:g} ({where})"
                )
            else:
                said.append(
                    f"degradation {degraded:.1%} <= {policy.max_metric_degradation:.0%} ({where})"
                )
    drifts = [s for s in summary.slots if s.max_psi is not None]
    if not already("drift"):
        if not drifts:
            said.append(f"no drift measured on {summary.day}")
        else:
            worst = max(drifts, key=lambda s: s.max_psi or 0.0)
            said.append(
                f"drift {worst.max_psi:.3f} <= {policy.max_psi:g} ({worst.max_psi_feature}"
                f"{_slot_label(worst.segment)} on {summary.day})"
            )
    return said


def policy_tags(spec: UseCaseSpec, trigger: str, reasons: list[str]) -> dict[str, str]:
    """Run tags that show why and under which thresholds a retrain ran."""
    policy = spec.retraining
    return {
        names.TRIGGER_TAG: trigger,
        names.TRIGGER_REASON_TAG: "; ".join(reasons)[:4000],
        names.POLICY_K_TAG: str(policy.new_partitions),
        names.POLICY_X_TAG: str(policy.max_metric_degradation),
        names.POLICY_Y_TAG: str(policy.max_psi),
    }
