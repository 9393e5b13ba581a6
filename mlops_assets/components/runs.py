"""Dead runs are noticed: every run beats a heartbeat, and a reaper fails the runs that died.

Dagster does not notice a run whose process was killed: the default run launcher does not check
run processes, and ``mlops refresh`` runs jobs in process with no launcher at all. Such a run
stays STARTED forever, and the retrain sensor, which never starts a retrain while one is
running, skipped every tick after it: automatic retraining silently stopped.

* **Heartbeat.** Every job of a use case carries :data:`heartbeat_hook`, whose resource
  (:class:`RunHeartbeat`) is set up when the run starts: it tags the run with the process
  running it (host, pid, process start time: ``mlops/heartbeat_*``) and refreshes
  ``mlops/heartbeat_at`` every ``interval_s`` seconds from a thread, until the run ends.
* **Reaper.** :func:`reap_dead_runs` (called by the retrain sensor at every evaluation and by
  every ``mlops`` command at start) finds the runs in progress whose process is gone (on this
  host: the pid no longer runs that process; from another host: the heartbeat is older than
  ``stale_after_s``) and reports each failed with Dagster's own API
  (``instance.report_run_failed``), with the reason. It then ends the dead runs' MLflow runs
  FAILED and fails the RUNNING Optuna trials of dead processes.

What a dead run held is released by its death: the retrain file lock (``flock``) by the kernel,
the PostgreSQL advisory lock with its connection; a pool's concurrency slots are freed here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg
from pydantic import Field, PrivateAttr

from mlops_assets import names
from mlops_assets.registry.heartbeat import Heartbeat, ProcessIdentity, now, stale
from mlops_assets.registry.tracking import Tracking
from mlops_assets.training.tuning import fail_trials_of_dead_processes

HEARTBEAT_RESOURCE = "run_heartbeat"
IN_PROGRESS = [
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
STALE_AFTER_S = 600.0


class RunHeartbeat(dg.ConfigurableResource):
    """Tags a run with the process running it and a heartbeat, for as long as it runs."""

    interval_s: float = Field(
        default=30.0, gt=0, description="Seconds between heartbeats (mlops/heartbeat_at)."
    )

    _beat: Heartbeat | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Record the run's process, then beat until teardown."""
        if context.run is None or context.instance is None:
            return
        instance, run_id = context.instance, context.run.run_id
        process = ProcessIdentity.orchestrator()
        identity = {
            names.HEARTBEAT_HOST_TAG: process.host,
            names.HEARTBEAT_PID_TAG: str(process.pid),
            names.HEARTBEAT_STARTED_TAG: process.started,
        }

        def beat() -> None:
            instance.add_run_tags(
                run_id, {**identity, names.HEARTBEAT_AT_TAG: now().isoformat(timespec="seconds")}
            )

        self._beat = Heartbeat(beat, self.interval_s, name=f"heartbeat-{run_id[:8]}").start()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """Stop beating (the run's status says the rest)."""
        if self._beat is not None:
            self._beat.stop()


@dg.success_hook(required_resource_keys={HEARTBEAT_RESOURCE})
def heartbeat_hook(context: dg.HookContext) -> None:
    """Does nothing itself: attached to a job, it makes every run of it set up the heartbeat."""


@dataclass(frozen=True)
class Reaped:
    """A run reported failed because its process was gone."""

    run_id: str
    job: str
    why: str


def run_process(tags: dict[str, str]) -> ProcessIdentity | None:
    """The process a run's heartbeat recorded, if any."""
    return ProcessIdentity.from_dict(
        {
            "host": tags.get(names.HEARTBEAT_HOST_TAG),
            "pid": tags.get(names.HEARTBEAT_PID_TAG),
            "started": tags.get(names.HEARTBEAT_STARTED_TAG, ""),
        }
        if names.HEARTBEAT_PID_TAG in tags
        else None
    )


def why_dead(tags: dict[str, str], stale_after_s: float = STALE_AFTER_S) -> str | None:
    """Why a run in progress is dead, or ``None`` if it may be alive (or cannot be judged)."""
    process = run_process(tags)
    if process is None:
        return None  # no heartbeat: started before this existed, or not started yet
    gone = process.gone()
    if gone:
        return f"its process (pid {process.pid} on {process.host}) is gone"
    beat = tags.get(names.HEARTBEAT_AT_TAG)
    if gone is None and stale(beat, stale_after_s):
        return (
            f"its process (pid {process.pid} on {process.host}) sent no heartbeat since "
            f"{beat or 'it started'} (more than {stale_after_s:.0f} s)"
        )
    return None


def reap_dead_runs(
    instance: dg.DagsterInstance,
    tracking: Tracking | None = None,
    optuna_url: str | None = None,
    stale_after_s: float = STALE_AFTER_S,
    log: Callable[[str], None] | None = None,
) -> list[Reaped]:
    """Report failed every run in progress whose process is gone; clean up after them."""
    reaped: list[Reaped] = []
    for record in instance.get_run_records(dg.RunsFilter(statuses=IN_PROGRESS)):
        run = record.dagster_run
        why = why_dead(dict(run.tags), stale_after_s)
        if why is None:
            continue
        message = f"Marked failed by mlops: {why}; the run was killed or its machine was lost."
        instance.add_run_tags(run.run_id, {names.REAPED_TAG: why})
        instance.report_run_failed(run, message=message)
        if instance.event_log_storage.supports_global_concurrency_limits:
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        reaped.append(Reaped(run.run_id, run.job_name, why))
        if log:
            log(f"run {run.run_id} of {run.job_name} marked failed: {why}")
    if reaped:
        _clean_up(reaped, tracking, optuna_url, log or (lambda line: None))
    return reaped


def _clean_up(
    reaped: list[Reaped],
    tracking: Tracking | None,
    optuna_url: str | None,
    log: Callable[[str], None],
) -> None:
    """End the dead runs' MLflow runs FAILED and fail their Optuna trials.

    Either store may be down; the runs are failed already, so that is said and left for the
    Optuna heartbeat (trials) or a person (MLflow runs), not raised into the sensor's tick.
    """
    try:
        ended = tracking.fail_runs_of([r.run_id for r in reaped]) if tracking else []
        if ended:
            log(f"MLflow runs of the dead runs ended FAILED: {', '.join(ended)}")
    except Exception as error:  # noqa: BLE001 - see above
        log(f"could not end the dead runs' MLflow runs: {type(error).__name__}: {error}")
    try:
        failed = fail_trials_of_dead_processes(optuna_url)
        if failed:
            log(f"Optuna trials of dead processes failed: {', '.join(failed)}")
    except Exception as error:  # noqa: BLE001 - see above
        log(f"could not fail the dead runs' Optuna trials: {type(error).__name__}: {error}")
