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
from mlops_assets.components.resources import MlflowTracking, ObjectStorage, OptunaStorage
from mlops_assets.components.runs import reap_dead_runs
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

SENSOR_NAME_TAG = "dagster/sensor_name"
RUN_KEY_TAG = "dagster/run_key"
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
    """The last day of the latest training window and the run that built it.

    A retrain that failed after its splits (killed during tuning, say) trained nothing: its
    window does not count, or the policy would wait for K more days before retraining.
    """
    for record in instance.fetch_materializations(train_key(spec), limit=50).records:
        run = instance.get_run_by_id(record.run_id)
        if run is not None and run.status == dg.DagsterRunStatus.FAILURE:
            continue
        materialization = record.asset_materialization
        if materialization is None:
            continue
        last_day = materialization.metadata.get(names.LAST_DAY)
        return (getattr(last_day, "value", None), record.run_id)
    return None, "never"


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


def died_unretried(instance: dg.DagsterInstance, job_name: str, sensor_name: str) -> dict[str, str]:
    """The evidence of this sensor's retrains that died (reaped), not retried yet: token -> run.

    The sensor fires once per evidence, and a run killed before training keeps its evidence
    fired: without this, K new partitions would never retrain again. A run that died is retried
    once (a retry that dies too is not: it may die for a reason that would kill every retry).
    """
    died: dict[str, str] = {}
    records = instance.get_run_records(
        dg.RunsFilter(
            job_name=job_name,
            statuses=[dg.DagsterRunStatus.FAILURE],
            tags={SENSOR_NAME_TAG: sensor_name},
        ),
        limit=20,
    )
    for record in records:
        run = record.dagster_run
        if names.REAPED_TAG not in run.tags or names.RETRY_OF_TAG in run.tags:
            continue
        retries = instance.get_run_records(
            dg.RunsFilter(tags={names.RETRY_OF_TAG: run.run_id}), limit=1
        )
        if retries:
            continue
        evidence = run.tags.get(RUN_KEY_TAG, "").split(":retrain:", 1)[-1]
        died.update({token: run.run_id for token in evidence.split("|") if token})
    return died


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
    def retrain_sensor(
        context: dg.SensorEvaluationContext,
        lake: ObjectStorage,
        mlflow: MlflowTracking,
        optuna_storage: OptunaStorage,
    ):
        # A killed run stays STARTED and would block every tick: fail the dead ones first.
        reap_dead_runs(
            context.instance, mlflow.tracking(), optuna_storage.url, log=context.log.warning
        )
        running = context.instance.get_run_records(
            dg.RunsFilter(job_name=job_name, statuses=ACTIVE), limit=1
        )
        if running:
            yield dg.SkipReason(f"a retrain of {spec.name} is already running")
            return
        fired: list[str] = json.loads(context.cursor) if context.cursor else []
        died = died_unretried(context.instance, job_name, names.retrain_sensor(spec.name))
        fired = [token for token in fired if token not in died]  # their run never finished
        facts = policy_facts(context.instance, spec, lake)
        evidence = policy_evidence(spec, facts)
        fresh = [e for e in evidence if e.token not in fired]
        if not fresh:
            yield dg.SkipReason("; ".join(policy_explanation(spec, facts, fired)))
            return
        reasons = [e.reason for e in fresh]
        tags = policy_tags(spec, "policy: " + ", ".join(e.kind for e in fresh), reasons)
        run_key = f"{spec.name}:retrain:" + "|".join(e.token for e in fresh)
        retried = sorted({died[e.token] for e in fresh if e.token in died})
        if retried:  # a new run key: Dagster never launches one key twice
            tags[names.RETRY_OF_TAG] = ",".join(retried)
            run_key += f":retry-of:{','.join(retried)}"
        request = retrain_request(spec, lake, tags, run_key=run_key)
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


def retraining_defaults(spec: UseCaseSpec) -> dict[str, bool]:
    """Whether each retraining instigator runs by default (its ``default_status`` in code).

    Read from the definitions themselves, so ``mlops status`` reports a switch nobody has
    touched as the UI does.
    """
    job_name = names.retrain_job(spec.name)
    sensor = build_retrain_sensor(spec, job_name)
    schedule = build_weekly_schedule(spec, job_name)
    return {
        sensor.name: sensor.default_status == dg.DefaultSensorStatus.RUNNING,
        schedule.name: schedule.default_status == dg.DefaultScheduleStatus.RUNNING,
    }
