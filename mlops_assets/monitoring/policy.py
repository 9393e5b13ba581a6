"""The retraining policy: retrain when data piles up, the champion's error grows, or data drifts.

Any one of the spec's conditions fires a run of the use case's retrain job (splits, tuning,
gate, bento), tagged with every reason that held and with K, X and Y, so the run and the ledger
say why it happened:

- K: ``retraining.new_partitions`` clean days landed after the last training window;
- X: the champion's primary metric on a day is worse than its test score by more than
  ``retraining.max_metric_degradation`` (relative), and by more than
  ``retraining.min_metric_change`` in the metric's units (a near-zero reference makes any
  relative change large);
- Y: a feature's PSI on a day is above ``retraining.max_psi``.

Drift and degradation are ignored for ``retraining.cooldown_days`` days after the last training
window: the reference of both moves slowly, and without a pause a lasting shift would retrain
every day.

A weekly schedule retrains regardless, as the M5 project did. Both are toggles in the UI
(*Automation*) and ``mlops pause`` / ``mlops resume`` flip them together. A segmented use
case's paused segments (``mlops pause <uc> --segment S``) are left out of the runs both request.
"""

import datetime as dt
import json
from dataclasses import dataclass

import dagster as dg

from mlops_assets.features.assets import clean_key, train_key
from mlops_assets.monitoring.assets import drift_key, performance_key
from mlops_assets.specs.model import UseCaseSpec

ACTIVE = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


@dataclass(frozen=True)
class Evidence:
    """One condition of the policy that holds, and the data that shows it."""

    kind: str  # "new_partitions", "degradation", "drift"
    reason: str
    token: str  # identifies the evidence, so the same evidence never fires twice


def _latest_metadata(instance: dg.DagsterInstance, key: dg.AssetKey) -> tuple[dict, str | None]:
    event = instance.get_latest_materialization_event(key)
    if event is None or event.asset_materialization is None:
        return {}, None
    metadata = {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}
    return metadata, event.asset_materialization.partition


def last_training(instance: dg.DagsterInstance, spec: UseCaseSpec) -> tuple[str | None, str]:
    """The last day of the latest training window and the run that built it."""
    event = instance.get_latest_materialization_event(train_key(spec))
    if event is None or event.asset_materialization is None:
        return None, "never"
    last_day = event.asset_materialization.metadata.get("last_day")
    return (getattr(last_day, "value", None), event.run_id)


def _cooling_down(evidence_day: str | None, last_day: str | None, cooldown_days: int) -> bool:
    """Whether evidence from ``evidence_day`` falls within the cool-down after a training."""
    if not evidence_day or not last_day:
        return False
    gap = dt.date.fromisoformat(evidence_day) - dt.date.fromisoformat(last_day)
    return gap.days <= cooldown_days


def policy_evidence(instance: dg.DagsterInstance, spec: UseCaseSpec) -> list[Evidence]:
    """Every condition of the policy that holds now."""
    policy = spec.retraining
    last_day, trained_by = last_training(instance, spec)
    evidence: list[Evidence] = []
    clean_days = sorted(instance.get_materialized_partitions(clean_key(spec)))
    new_days = [d for d in clean_days if last_day is None or d > last_day]
    if len(new_days) >= policy.new_partitions:
        since = f"since {last_day}" if last_day else "and no model trained yet"
        evidence.append(
            Evidence(
                "new_partitions",
                f"{len(new_days)} new partitions {since} (K={policy.new_partitions})",
                f"{trained_by}:k",
            )
        )
    performance, perf_day = _latest_metadata(instance, performance_key(spec))
    worse = performance.get("degradation")
    if _cooling_down(perf_day, last_day, policy.cooldown_days):
        worse = None
    change = performance.get("metric_change")
    if change is not None and change <= policy.min_metric_change:
        worse = None  # a large share of a tiny reference: noise, not degradation
    if perf_day and worse is not None and worse > policy.max_metric_degradation:
        evidence.append(
            Evidence(
                "degradation",
                f"{spec.primary_metric} on {perf_day} is {worse:.1%} worse than the champion's "
                f"test score (X={policy.max_metric_degradation:.0%})",
                f"{trained_by}:x:{perf_day}",
            )
        )
    drift, drift_day = _latest_metadata(instance, drift_key(spec))
    max_psi = drift.get("max_psi")
    if _cooling_down(drift_day, last_day, policy.cooldown_days):
        max_psi = None
    if drift_day and max_psi is not None and max_psi > policy.max_psi:
        evidence.append(
            Evidence(
                "drift",
                f"PSI of {drift.get('max_psi_feature')} on {drift_day} is {max_psi:.3f} "
                f"(Y={policy.max_psi})",
                f"{trained_by}:y:{drift_day}",
            )
        )
    return evidence


def policy_tags(spec: UseCaseSpec, trigger: str, reasons: list[str]) -> dict[str, str]:
    """Run tags that show why and under which thresholds a retrain ran."""
    policy = spec.retraining
    return {
        "mlops/trigger": trigger,
        "mlops/trigger_reason": "; ".join(reasons)[:4000],
        "mlops/policy_K": str(policy.new_partitions),
        "mlops/policy_X": str(policy.max_metric_degradation),
        "mlops/policy_Y": str(policy.max_psi),
    }


def build_retrain_sensor(spec: UseCaseSpec, job_name: str) -> dg.SensorDefinition:
    """The retraining policy of one use case, as a sensor on its retrain job."""

    @dg.sensor(
        name=f"{spec.name}__retrain_sensor",
        job_name=job_name,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"{spec.name}: retrain when K new partitions landed, the champion's error "
        "grew by X, or a feature's PSI exceeds Y (thresholds from the spec).",
    )
    def retrain_sensor(context: dg.SensorEvaluationContext):
        running = context.instance.get_run_records(
            dg.RunsFilter(job_name=job_name, statuses=ACTIVE), limit=1
        )
        if running:
            yield dg.SkipReason(f"a retrain of {spec.name} is already running")
            return
        fired: list[str] = json.loads(context.cursor) if context.cursor else []
        fresh = [e for e in policy_evidence(context.instance, spec) if e.token not in fired]
        if not fresh:
            yield dg.SkipReason("no retraining condition holds")
            return
        reasons = [e.reason for e in fresh]
        request = retrain_request(
            spec,
            context.instance,
            policy_tags(spec, "policy: " + ", ".join(e.kind for e in fresh), reasons),
            run_key=f"{spec.name}:retrain:" + "|".join(e.token for e in fresh),
        )
        yield request
        if isinstance(request, dg.RunRequest):  # evidence held back by a pause fires later
            context.update_cursor(json.dumps((fired + [e.token for e in fresh])[-200:]))

    return retrain_sensor


def retrain_request(
    spec: UseCaseSpec, instance: dg.DagsterInstance, tags: dict[str, str], run_key: str | None
) -> dg.RunRequest | dg.SkipReason:
    """A run of the retrain job, without the segments that are paused (skipped if all are)."""
    from mlops_assets.monitoring.toggles import paused_segments

    paused = paused_segments(spec, instance) if spec.segments else []
    if not paused:
        return dg.RunRequest(run_key=run_key, tags=tags)
    active = [name for name in spec.segment_names if name not in paused]
    if not active:
        return dg.SkipReason(f"every segment of {spec.name} is paused ({', '.join(paused)})")
    from mlops_assets.use_case import retrain_selection

    return dg.RunRequest(
        run_key=run_key,
        tags={
            **tags,
            "mlops/segments": ",".join(active),
            "mlops/paused_segments": ",".join(paused),
        },
        asset_selection=retrain_selection(spec, active),
    )


def build_weekly_schedule(spec: UseCaseSpec, job_name: str) -> dg.ScheduleDefinition:
    """Retrain weekly whatever the data says (the segments not paused, if it has segments)."""

    @dg.schedule(
        name=f"{spec.name}__weekly_retrain",
        cron_schedule=spec.retraining.weekly_schedule,
        job_name=job_name,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"{spec.name}: weekly retrain ({spec.retraining.weekly_schedule} UTC).",
    )
    def weekly_retrain(context: dg.ScheduleEvaluationContext):
        tags = policy_tags(spec, "schedule: weekly", ["weekly schedule"])
        return retrain_request(spec, context.instance, tags, run_key=None)

    return weekly_retrain
