"""Launch the same jobs a sensor or a person in the UI would, against the instance in DAGSTER_HOME.

The CLI never calls asset functions: it executes the generated jobs in-process (a fresh process
per job would cost ~10 s of imports each), recording every run in the instance so that
``dagster dev`` shows them afterwards. ``mlops refresh`` finds what to ingest the way the landing
sensor does (:func:`~mlops_assets.ingest.batches.pending_ranges`, from the ingestion ledger),
but over every landing day, so a file that landed for an older day is picked up too.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from mlops_assets import names
from mlops_assets.components.automation import retrain_selection
from mlops_assets.components.ingest import range_tags
from mlops_assets.components.partitions import partition_bounds
from mlops_assets.components.runs import Reaped, reap_dead_runs
from mlops_assets.components.training import tuned_key
from mlops_assets.definitions import defs
from mlops_assets.environment import Environment
from mlops_assets.features.quality import rejected_days
from mlops_assets.ingest.batches import PendingRange, pending_ranges
from mlops_assets.ingest.days import days_between
from mlops_assets.specs.model import UseCaseSpec

ONE_DAY = dt.timedelta(days=1)


@dataclass
class RunOutcome:
    """One launched run."""

    job: str
    run_id: str
    success: bool
    partition: str | None = None
    errors: list[str] = field(default_factory=list)


@dataclass
class RefreshOutcome:
    """What a refresh did."""

    ingested: list[RunOutcome] = field(default_factory=list)
    retrain: RunOutcome | None = None
    unplaced: dict[str, str] = field(default_factory=dict)  # landed key -> why not ingested

    @property
    def success(self) -> bool:
        """Whether every launched run succeeded."""
        runs = [*self.ingested, *([self.retrain] if self.retrain else [])]
        return all(r.success for r in runs)


PLANNED_EVENTS_KNOB = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"
"""Dagster's switch for one "planned" event per asset of a range run (also in the Makefile, the
image and the chart, for the runs the daemon and the UI create)."""


def one_planned_event_per_asset() -> None:
    """Announce a range run's assets once each, not once per day of the range.

    A landed history is one run over its whole range; without this, Dagster writes a planned
    event per asset and day before the run starts (about half of a years-long ingest on
    SQLite). The cost: a failed range run leaves its days "missing" in the UI rather than
    "failed" (the run, its failed check and ``mlops status`` still say what failed). An explicit
    setting in the environment wins.
    """
    os.environ.setdefault(PLANNED_EVENTS_KNOB, "true")


def instance(env: Environment) -> dg.DagsterInstance:
    """The persistent instance under ``DAGSTER_HOME`` (created on first use)."""
    env.ensure_dagster_home()
    return dg.DagsterInstance.get()


def reap(env: Environment, log: Callable[[str], None] | None = None) -> list[Reaped]:
    """Fail the runs in progress whose process is gone (what every ``mlops`` command does first).

    The same reaper the retrain sensor calls (:mod:`mlops_assets.components.runs`): a killed
    ``mlops refresh`` or run worker no longer leaves a run STARTED that blocks retraining.
    """
    return reap_dead_runs(instance(env), env.tracking(), env.optuna_url, log=log)


def load_definitions() -> dg.Definitions:
    """The code location's definitions, as Dagster would load them."""
    return defs()


def _failure_messages(result: Any) -> list[str]:
    """Each failed step and why, as a person needs it to act.

    A ``dg.Failure``'s own description (it names what failed), else the innermost cause
    (Dagster's own message only says "error in op").
    """
    messages = []
    for event in result.all_events:
        evaluation = event.event_specific_data
        if event.event_type_value == "ASSET_CHECK_EVALUATION" and not evaluation.passed:
            if evaluation.severity.value == "ERROR":
                key = evaluation.asset_key.to_user_string()
                messages.append(
                    f"{key} check {evaluation.check_name} failed: {evaluation.description}"
                )
        if event.is_step_failure:
            data = event.step_failure_data
            described = data.user_failure_data.description if data.user_failure_data else None
            error = data.error
            while error is not None and error.cause is not None:
                error = error.cause
            text = described or (error.message.strip() if error else "failed")
            messages.append(f"{event.step_key}: {text}")
    return messages


def execute(
    definitions: dg.Definitions,
    job_name: str,
    dagster_instance: dg.DagsterInstance,
    run_config: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
    log_level: str = "WARNING",
    asset_selection: list[dg.AssetKey] | None = None,
) -> RunOutcome:
    """Run one job in-process, recorded in the instance; failures are returned, not raised."""
    one_planned_event_per_asset()
    job = definitions.resolve_job_def(job_name)
    config = {"loggers": {"console": {"config": {"log_level": log_level}}}, **(run_config or {})}
    result = job.execute_in_process(
        instance=dagster_instance,
        run_config=config,
        tags={names.LAUNCHED_BY_TAG: "cli", **(tags or {})},
        raise_on_error=False,
        asset_selection=asset_selection,
    )
    first, last = (tags or {}).get(names.RANGE_START_TAG), (tags or {}).get(names.RANGE_END_TAG)
    return RunOutcome(
        job=job_name,
        run_id=result.run_id,
        success=result.success,
        partition=(first if first == last else f"{first}..{last}") if first else None,
        errors=[] if result.success else _failure_messages(result),
    )


def retrain_run_config(spec: UseCaseSpec, n_trials: int | None, seed: int | None) -> dict:
    """Run config of the retrain job for a tuning budget override (every slot, or a segment's).

    A trial count given here is the whole budget: the spec's time limit is lifted, so the same
    trials run on a slow machine as on a fast one.
    """
    tune: dict[str, Any] = {}
    if n_trials is not None:
        tune["n_trials"] = n_trials
        tune["timeout_s"] = 0
    if seed is not None:
        tune["seed"] = seed
    if not tune:
        return {}
    return {
        "ops": {
            tuned_key(view).to_python_identifier(): {"config": tune}
            for view in spec.segment_specs()
        }
    }


def day_ranges(days: list[str]) -> list[tuple[str, str]]:
    """Consecutive days as ``(first, last)`` ranges."""
    ranges: list[tuple[str, str]] = []
    for day in sorted(days):
        if ranges and dt.date.fromisoformat(day) - dt.date.fromisoformat(ranges[-1][1]) == ONE_DAY:
            ranges[-1] = (ranges[-1][0], day)
        else:
            ranges.append((day, day))
    return ranges


def rechecks(
    spec: UseCaseSpec, env: Environment, pending: list[PendingRange]
) -> list[PendingRange]:
    """Rejected days judged under another spec than the current one, as ranges to ingest again.

    After a spec is fixed (a threshold, a category), the days it rejected are judged again from
    the files still in the landing zone: nothing needs to land again.
    """
    covered = {d for batch in pending for d in days_between(batch.first, batch.last)}
    stale = [
        r.day for r in rejected_days(env.lake(), spec) if r.stale(spec) and r.day not in covered
    ]
    return [PendingRange(first, last, {}) for first, last in day_ranges(stale)]


def ingest(
    spec: UseCaseSpec,
    env: Environment,
    definitions: dg.Definitions,
    dagster_instance: dg.DagsterInstance,
    log: Callable[[str], None] | None = None,
    tags: dict[str, str] | None = None,
) -> RefreshOutcome:
    """Ingest every new landed file version (all landing days), one run per pending range.

    Days rejected under an older spec are judged again too (:func:`rechecks`).
    """
    found = pending_ranges(env.landing_zone(), env.lake(), spec, partition_bounds(spec))
    outcome = RefreshOutcome(unplaced=found.unplaced)
    again = rechecks(spec, env, found.ranges)
    for batch in [*found.ranges, *again]:
        trigger = "refresh" if batch.files else "refresh: re-check under the current spec"
        if log and batch.first != batch.last:  # a range can take minutes: say it started
            files = f"{len(batch.files)} file{'s' if len(batch.files) > 1 else ''}"
            log(f"ingest {spec.name} {batch.label} ({files}): running")
        run = execute(
            definitions,
            names.ingest_job(spec.name),
            dagster_instance,
            tags={
                **range_tags(batch.first, batch.last),
                names.TRIGGER_TAG: trigger,
                names.SOURCE_FINGERPRINT_TAG: batch.fingerprint,
                **(tags or {}),
            },
        )
        outcome.ingested.append(run)
        if log:
            state = "ok" if run.success else "FAILED"
            log(f"ingest {spec.name} {batch.label}: {state} (run {run.run_id})")
    return outcome


def refresh(
    spec: UseCaseSpec,
    env: Environment,
    definitions: dg.Definitions | None = None,
    dagster_instance: dg.DagsterInstance | None = None,
    train: bool = True,
    n_trials: int | None = None,
    seed: int | None = None,
    log: Callable[[str], None] | None = None,
    segment: str | None = None,
) -> RefreshOutcome:
    """Ingest every landed file version that is new, then retrain and promote.

    With ``segment`` (segmented use cases), the retrain run tunes and gates that segment only
    (the splits, the ledger and the bento are rebuilt as usual).
    """
    definitions = definitions or load_definitions()
    dagster_instance = dagster_instance or instance(env)
    outcome = ingest(spec, env, definitions, dagster_instance, log)
    if train:
        trained = spec.segment_spec(segment) if segment else spec
        outcome.retrain = execute(
            definitions,
            names.retrain_job(spec.name),
            dagster_instance,
            run_config=retrain_run_config(trained, n_trials, seed),
            tags={
                names.TRIGGER_TAG: "refresh",
                **({names.SEGMENT_TAG: segment} if segment else {}),
            },
            asset_selection=retrain_selection(spec, [segment]) if segment else None,
        )
        if log:
            state = "ok" if outcome.retrain.success else "FAILED"
            log(f"retrain {spec.name}: {state} (run {outcome.retrain.run_id})")
    return outcome
