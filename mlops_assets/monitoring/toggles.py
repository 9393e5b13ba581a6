"""Pause and resume automatic retraining: the retrain sensor and weekly schedule toggles.

The toggles are Dagster's own instigator states (the switches under *Automation* in the UI), set
against the instance in ``DAGSTER_HOME`` the way Dagster's own CLI sets them, so the UI, the
daemon and ``mlops`` always agree on whether a use case retrains by itself.

A segmented use case can also pause one segment (``mlops pause <uc> --segment S``): the sensor
and the schedule keep running and retrain the other segments only. The paused segments are a
key of the instance's key-value store (``mlops/paused_segments/<uc>``), so the daemon's sensor
ticks read what the CLI wrote.
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg

from mlops_assets.specs.model import UseCaseSpec


def retraining_instigators(spec: UseCaseSpec) -> list[tuple[str, str]]:
    """``(kind, name)`` of the automation that retrains a use case by itself."""
    return [
        ("sensor", f"{spec.name}__retrain_sensor"),
        ("schedule", f"{spec.name}__weekly_retrain"),
    ]


LOCATION_NAME = "mlops_assets"


def workspace_file() -> Path:
    """A workspace naming the location as every deployment does (state is keyed by that name)."""
    from mlops_assets.settings import ensure_dagster_home

    path = ensure_dagster_home() / "mlops-cli-workspace.yaml"
    path.write_text(
        "load_from:\n  - python_module:\n      module_name: mlops_assets.definitions\n"
        f"      location_name: {LOCATION_NAME}\n"
    )
    return path


def set_retraining(spec: UseCaseSpec, running: bool) -> list[str]:
    """Start or stop the retrain sensor and weekly schedule; returns what was changed.

    Does what ``dagster sensor stop``/``dagster schedule stop`` do, for both instigators with one
    load of the code location (in this process, under the name every deployment uses).
    """
    from dagster._cli.workspace.cli_target import get_workspace_from_cli_opts
    from dagster.version import __version__
    from dagster_shared.cli import WorkspaceOpts

    from mlops_assets.orchestration import instance as dagster_instance

    instance = dagster_instance()
    options = WorkspaceOpts(workspace=[str(workspace_file())])
    changed = []
    with get_workspace_from_cli_opts(
        instance, __version__, options, allow_in_process=True
    ) as workspace:
        location = workspace.get_code_location(LOCATION_NAME)
        repository = next(iter(location.get_repositories().values()))
        for kind, name in retraining_instigators(spec):
            if kind == "sensor":
                target = repository.get_sensor(name)
                if running:
                    instance.start_sensor(target)
                else:
                    instance.stop_sensor(target.get_remote_origin_id(), target.selector_id, target)
            else:
                target = repository.get_schedule(name)
                if running:
                    instance.start_schedule(target)
                else:
                    instance.stop_schedule(
                        target.get_remote_origin_id(), target.selector_id, target
                    )
            changed.append(f"{kind} {name}: {'running' if running else 'stopped'}")
    return changed


def retraining_state(spec: UseCaseSpec, instance: dg.DagsterInstance) -> dict[str, str]:
    """Each retraining instigator's state as the instance records it (default: running)."""
    names = {name for _, name in retraining_instigators(spec)}
    states = {name: "running (default)" for name in names}
    for state in instance.all_instigator_state():
        if state.name in names:
            states[state.name] = state.status.value.lower()
    return states


def paused_segments_key(spec: UseCaseSpec) -> str:
    """The instance key-value entry listing a use case's paused segments."""
    return f"mlops/paused_segments/{spec.name}"


def paused_segments(spec: UseCaseSpec, instance: dg.DagsterInstance) -> list[str]:
    """The segments whose automatic retraining is paused, in spec order."""
    key = paused_segments_key(spec)
    stored = instance.run_storage.get_cursor_values({key}).get(key)
    names = set(json.loads(stored)) if stored else set()
    return [name for name in spec.segment_names if name in names]


def set_segment_retraining(
    spec: UseCaseSpec, segments: list[str], running: bool, instance: dg.DagsterInstance
) -> list[str]:
    """Pause or resume the automatic retraining of ``segments``; returns what was changed."""
    paused = set(paused_segments(spec, instance))
    paused = paused - set(segments) if running else paused | set(segments)
    ordered = [name for name in spec.segment_names if name in paused]
    instance.run_storage.set_cursor_values({paused_segments_key(spec): json.dumps(ordered)})
    state = "retrained automatically" if running else "paused (other segments still retrain)"
    return [f"segment {name}: {state}" for name in segments]


def retraining_summary(spec: UseCaseSpec, instance: dg.DagsterInstance) -> dict[str, object]:
    """What ``mlops status`` shows: each instigator's state and the paused segments."""
    summary: dict[str, object] = dict(retraining_state(spec, instance))
    if spec.segments:
        summary["paused_segments"] = paused_segments(spec, instance)
    return summary
