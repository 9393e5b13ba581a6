"""Launch the same jobs a sensor or a person in the UI would, against the instance in DAGSTER_HOME.

The CLI never calls asset functions: it executes the generated jobs in-process (a fresh process
per job would cost ~10 s of imports each), recording every run in the instance so that
``dagster dev`` shows them afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from mlops_assets.specs.model import UseCaseSpec
from mlops_assets.training.assets import tuned_key
from mlops_assets.use_case import ingest_job_name, retrain_job_name, retrain_selection


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

    @property
    def success(self) -> bool:
        """Whether every launched run succeeded."""
        runs = [*self.ingested, *([self.retrain] if self.retrain else [])]
        return all(r.success for r in runs)


def instance() -> dg.DagsterInstance:
    """The persistent instance under ``DAGSTER_HOME`` (created on first use)."""
    from mlops_assets.settings import ensure_dagster_home

    ensure_dagster_home()
    return dg.DagsterInstance.get()


def load_definitions() -> dg.Definitions:
    """The code location's definitions, as Dagster would load them."""
    from mlops_assets.definitions import defs

    return defs()


def _failure_messages(result: Any) -> list[str]:
    """Each failed step with the innermost cause (Dagster's own message only says "error in op")."""
    messages = []
    for event in result.all_events:
        if event.is_step_failure:
            error = event.step_failure_data.error
            while error is not None and error.cause is not None:
                error = error.cause
            text = error.message.strip() if error else "failed"
            messages.append(f"{event.step_key}: {text}")
    return messages


def execute(
    definitions: dg.Definitions,
    job_name: str,
    dagster_instance: dg.DagsterInstance,
    partition_key: str | None = None,
    run_config: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
    log_level: str = "WARNING",
    asset_selection: list[dg.AssetKey] | None = None,
) -> RunOutcome:
    """Run one job in-process, recorded in the instance; failures are returned, not raised."""
    job = definitions.resolve_job_def(job_name)
    config = {"loggers": {"console": {"config": {"log_level": log_level}}}, **(run_config or {})}
    result = job.execute_in_process(
        instance=dagster_instance,
        partition_key=partition_key,
        run_config=config,
        tags={"mlops/launched_by": "cli", **(tags or {})},
        raise_on_error=False,
        asset_selection=asset_selection,
    )
    return RunOutcome(
        job=job_name,
        run_id=result.run_id,
        success=result.success,
        partition=partition_key,
        errors=[] if result.success else _failure_messages(result),
    )


def retrain_run_config(spec: UseCaseSpec, n_trials: int | None, seed: int | None) -> dict:
    """Run config of the retrain job for a tuning budget override."""
    tune: dict[str, Any] = {}
    if n_trials is not None:
        tune["n_trials"] = n_trials
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


def refresh(
    spec: UseCaseSpec,
    definitions: dg.Definitions | None = None,
    dagster_instance: dg.DagsterInstance | None = None,
    train: bool = True,
    n_trials: int | None = None,
    seed: int | None = None,
    log: Any = None,
    segment: str | None = None,
) -> RefreshOutcome:
    """Ingest every landed day that is missing or has new files, then retrain and promote.

    With ``segment`` (segmented use cases), the retrain run tunes and gates that segment only
    (the splits, the ledger and the bento are rebuilt as usual).
    """
    from mlops_assets.ingest.sensors import pending_days

    definitions = definitions or load_definitions()
    dagster_instance = dagster_instance or instance()
    if spec.partitions.by == "event_date":
        outcome = refresh_event_dates(spec, definitions, dagster_instance, log)
        return _retrain(
            spec, definitions, dagster_instance, outcome, train, n_trials, seed, log, segment
        )
    with initialized_resource(definitions.resources or {}, "landing") as landing:
        pending = pending_days(landing, spec, dagster_instance)
    outcome = RefreshOutcome()
    for day, digest in pending.items():
        run = execute(
            definitions,
            ingest_job_name(spec),
            dagster_instance,
            partition_key=day,
            tags={"mlops/trigger": "refresh", "mlops/source_fingerprint": digest},
        )
        outcome.ingested.append(run)
        if log:
            log(f"ingest {spec.name} {day}: {'ok' if run.success else 'FAILED'} (run {run.run_id})")
    return _retrain(
        spec, definitions, dagster_instance, outcome, train, n_trials, seed, log, segment
    )


def refresh_event_dates(
    spec: UseCaseSpec, definitions: dg.Definitions, dagster_instance: dg.DagsterInstance, log: Any
) -> RefreshOutcome:
    """Ingest the landing days not ingested yet as ONE run over their event dates' range."""
    from mlops_assets.ingest.event_dates import pending_range, range_tags

    job = ingest_job_name(spec)
    with initialized_resource(definitions.resources or {}, "landing") as landing:
        dates, landed = pending_range(landing, spec, dagster_instance, job)
    outcome = RefreshOutcome()
    if dates is None:
        return outcome
    run = execute(
        definitions,
        job,
        dagster_instance,
        tags={**range_tags(*dates, landed), "mlops/trigger": "refresh"},
    )
    run.partition = f"{dates[0]}..{dates[1]}"
    outcome.ingested.append(run)
    if log:
        log(
            f"ingest {spec.name} {run.partition}: {'ok' if run.success else 'FAILED'} "
            f"(run {run.run_id})"
        )
    return outcome


def _retrain(
    spec: UseCaseSpec,
    definitions: dg.Definitions,
    dagster_instance: dg.DagsterInstance,
    outcome: RefreshOutcome,
    train: bool,
    n_trials: int | None,
    seed: int | None,
    log: Any,
    segment: str | None = None,
) -> RefreshOutcome:
    """Retrain (one segment, if given) after the ingest runs, recorded on ``outcome``."""
    if train:
        trained = spec.segment_spec(segment) if segment else spec
        outcome.retrain = execute(
            definitions,
            retrain_job_name(spec),
            dagster_instance,
            run_config=retrain_run_config(trained, n_trials, seed),
            tags={"mlops/trigger": "refresh", **({"mlops/segment": segment} if segment else {})},
            asset_selection=retrain_selection(spec, [segment]) if segment else None,
        )
        if log:
            state = "ok" if outcome.retrain.success else "FAILED"
            log(f"retrain {spec.name}: {state} (run {outcome.retrain.run_id})")
    return outcome


@contextmanager
def initialized_resource(resources: Mapping[str, Any], key: str) -> Iterator[Any]:
    """A configured resource outside a run (``EnvVar`` fields resolved, nested ones set up)."""
    resource = resources[key]
    if isinstance(resource, dg.ConfigurableResource):
        with resource.process_config_and_initialize_cm() as initialized:
            yield initialized
    else:
        yield resource
