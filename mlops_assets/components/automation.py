"""The retraining policy as a sensor, and the weekly retrain schedule, of one use case.

Both request the retrain job, tagged with why and under which thresholds (see
:mod:`mlops_assets.monitoring.policy`). Both are toggles in the UI (*Automation*), and
``mlops pause`` / ``mlops resume`` flip them together; a segmented use case's paused segments
are left out of the runs both request.
"""

import json

import dagster as dg

from mlops_assets import names
from mlops_assets.components.features import clean_key, test_key, train_key
from mlops_assets.components.registry import champion_key, ledger_key
from mlops_assets.components.resources import ObjectStorage
from mlops_assets.components.serving import bento_key
from mlops_assets.components.training import tuned_key
from mlops_assets.monitoring.pauses import paused_segments
from mlops_assets.monitoring.policy import (
    PolicyFacts,
    policy_evidence,
    policy_explanation,
    policy_tags,
)
from mlops_assets.monitoring.summary import latest_summary
from mlops_assets.specs.model import UseCaseSpec
from mlops_assets.storage.tables import stored_partitions

ACTIVE = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def retrain_selection(spec: UseCaseSpec, segments: list[str]) -> list[dg.AssetKey]:
    """The retrain job's assets for some segments: splits, their models and gates, ledger, bento.

    The others keep their champions; the ledger and the bento cover every segment anyway.
    """
    views = [spec.segment_spec(segment) for segment in segments]
    return [
        train_key(spec),
        test_key(spec),
        *(tuned_key(view) for view in views),
        *(champion_key(view) for view in views),
        ledger_key(spec),
        bento_key(spec),
    ]


def last_training(instance: dg.DagsterInstance, spec: UseCaseSpec) -> tuple[str | None, str]:
    """The last day of the latest training window and the run that built it."""
    event = instance.get_latest_materialization_event(train_key(spec))
    if event is None or event.asset_materialization is None:
        return None, "never"
    last_day = event.asset_materialization.metadata.get(names.LAST_DAY)
    return (getattr(last_day, "value", None), event.run_id)


def policy_facts(
    instance: dg.DagsterInstance, spec: UseCaseSpec, lake: ObjectStorage
) -> PolicyFacts:
    """What the policy judges now: the last training, the stored clean days, the latest summary."""
    store = lake.store()
    last_day, trained_by = last_training(instance, spec)
    return PolicyFacts(
        last_training_day=last_day,
        trained_by=trained_by,
        clean_days=stored_partitions(store, clean_key(spec).path),
        latest=latest_summary(store, spec),
    )


def retrain_request(
    spec: UseCaseSpec, lake: ObjectStorage, tags: dict[str, str], run_key: str | None
) -> dg.RunRequest | dg.SkipReason:
    """A run of the retrain job, without the segments that are paused (skipped if all are)."""
    paused = paused_segments(lake.store(), spec)
    if not paused:
        return dg.RunRequest(run_key=run_key, tags=tags)
    active = [name for name in spec.segment_names if name not in paused]
    if not active:
        return dg.SkipReason(f"every segment of {spec.name} is paused ({', '.join(paused)})")
    return dg.RunRequest(
        run_key=run_key,
        tags={
            **tags,
            names.SEGMENTS_TAG: ",".join(active),
            names.PAUSED_SEGMENTS_TAG: ",".join(paused),
        },
        asset_selection=retrain_selection(spec, active),
    )


def build_retrain_sensor(spec: UseCaseSpec, job_name: str) -> dg.SensorDefinition:
    """The retraining policy of one use case, as a sensor on its retrain job."""

    @dg.sensor(
        name=names.retrain_sensor(spec.name),
        job_name=job_name,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"{spec.name}: retrain when K new partitions landed, the champion's error "
        "grew by X, or a feature's PSI exceeds Y (thresholds from the spec).",
    )
    def retrain_sensor(context: dg.SensorEvaluationContext, lake: ObjectStorage):
        running = context.instance.get_run_records(
            dg.RunsFilter(job_name=job_name, statuses=ACTIVE), limit=1
        )
        if running:
            yield dg.SkipReason(f"a retrain of {spec.name} is already running")
            return
        fired: list[str] = json.loads(context.cursor) if context.cursor else []
        facts = policy_facts(context.instance, spec, lake)
        evidence = policy_evidence(spec, facts)
        fresh = [e for e in evidence if e.token not in fired]
        if not fresh:
            yield dg.SkipReason("; ".join(policy_explanation(spec, facts, fired)))
            return
        reasons = [e.reason for e in fresh]
        request = retrain_request(
            spec,
            lake,
            policy_tags(spec, "policy: " + ", ".join(e.kind for e in fresh), reasons),
            run_key=f"{spec.name}:retrain:" + "|".join(e.token for e in fresh),
        )
        yield request
        if isinstance(request, dg.RunRequest):  # evidence held back by a pause fires later
            context.update_cursor(json.dumps((fired + [e.token for e in fresh])[-200:]))

    return retrain_sensor


def build_weekly_schedule(spec: UseCaseSpec, job_name: str) -> dg.ScheduleDefinition:
    """Retrain weekly whatever the data says (the segments not paused, if it has segments)."""

    @dg.schedule(
        name=names.weekly_schedule(spec.name),
        cron_schedule=spec.retraining.weekly_schedule,
        job_name=job_name,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"{spec.name}: weekly retrain ({spec.retraining.weekly_schedule} UTC).",
    )
    def weekly_retrain(context: dg.ScheduleEvaluationContext, lake: ObjectStorage):
        tags = policy_tags(spec, "schedule: weekly", ["weekly schedule"])
        return retrain_request(spec, lake, tags, run_key=None)

    return weekly_retrain
