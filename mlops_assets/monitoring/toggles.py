"""Pause and resume automatic retraining: the retrain sensor and weekly schedule toggles.

The toggles are Dagster's own instigator states (the switches under *Automation* in the UI), set
through Dagster's CLI against the instance in ``DAGSTER_HOME``, so the UI, the daemon and
``mlops`` always agree on whether a use case retrains by itself.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dagster as dg

from mlops_assets.specs.model import UseCaseSpec


def retraining_instigators(spec: UseCaseSpec) -> list[tuple[str, str]]:
    """``(kind, name)`` of the automation that retrains a use case by itself."""
    return [
        ("sensor", f"{spec.name}__retrain_sensor"),
        ("schedule", f"{spec.name}__weekly_retrain"),
    ]


class ToggleError(RuntimeError):
    """Dagster refused to change an instigator; the message carries its output."""


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
    """Start or stop the retrain sensor and weekly schedule; returns what was changed."""
    workspace = workspace_file()
    action = "start" if running else "stop"
    changed = []
    for kind, name in retraining_instigators(spec):
        command = [sys.executable, "-m", "dagster", kind, action, name, "-w", str(workspace)]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0 and "already" not in (result.stdout + result.stderr):
            raise ToggleError(f"dagster {kind} {action} {name} failed:\n{result.stderr[-2000:]}")
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
