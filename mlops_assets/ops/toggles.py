"""Pause and resume automatic retraining: the retrain sensor and weekly schedule toggles.

The toggles are Dagster's own instigator states (the switches under *Automation* in the UI),
set through Dagster's public command line (``dagster sensor stop``, ``dagster schedule start``,
...) against the instance in ``DAGSTER_HOME`` and a workspace naming the location as every
deployment does, so the UI, the daemon and ``mlops`` always agree on whether a use case
retrains by itself. The two commands run side by side (each loads the code location once).

A segmented use case can also pause one segment (``mlops pause <uc> --segment S``): the sensor
and the schedule keep running and retrain the other segments only (see
:mod:`mlops_assets.monitoring.pauses`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from mlops_assets import names
from mlops_assets.components.automation import retraining_defaults
from mlops_assets.environment import Environment
from mlops_assets.specs.model import UseCaseSpec


class ToggleError(RuntimeError):
    """Dagster refused to start or stop an instigator; the message carries its output."""


def workspace_file(env: Environment) -> Path:
    """A workspace naming the location as every deployment does (state is keyed by that name)."""
    path = env.ensure_dagster_home() / "mlops-cli-workspace.yaml"
    path.write_text(
        "load_from:\n  - python_module:\n      module_name: mlops_assets.definitions\n"
        f"      location_name: {names.LOCATION}\n"
    )
    return path


def dagster_command(kind: str, action: str, name: str, workspace: Path) -> list[str]:
    """``dagster sensor|schedule start|stop NAME -w WORKSPACE``."""
    executable = Path(sys.executable).parent / "dagster"
    return [str(executable), kind, action, name, "-w", str(workspace)]


def set_retraining(spec: UseCaseSpec, env: Environment, running: bool) -> list[str]:
    """Start or stop the retrain sensor and weekly schedule; returns what was changed.

    Raises:
        ToggleError: Dagster refused (its output in the message).
    """
    workspace = workspace_file(env)
    # Create a fresh instance's storage here first: the two commands creating its SQLite
    # databases at once leave them with two alembic heads, and both then fail to load.
    with dg.DagsterInstance.from_config(str(env.dagster_home)):
        pass
    action = "start" if running else "stop"
    environment = {**os.environ, "DAGSTER_HOME": str(env.dagster_home)}
    started = [
        (
            kind,
            name,
            subprocess.Popen(
                dagster_command(kind, action, name, workspace),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=environment,
            ),
        )
        for kind, name in names.retraining_instigators(spec.name)
    ]
    changed = []
    for kind, name, process in started:
        output, _ = process.communicate(timeout=300)
        already = "already" in output.lower()
        if process.returncode != 0 and not already:
            raise ToggleError(f"dagster {kind} {action} {name} failed:\n{output.strip()[-2000:]}")
        changed.append(f"{kind} {name}: {'running' if running else 'stopped'}")
    return changed


def shown_state(stored: str | None, default_running: bool) -> str:
    """An instigator's state as the UI shows it: ``running`` or ``stopped``.

    ``stored`` is the status the instance records (``RUNNING``, ``STOPPED``,
    ``DECLARED_IN_CODE``) or ``None`` when it records nothing. A switch nobody has toggled
    (nothing stored, or ``DECLARED_IN_CODE``, which the daemon stores as it ticks) follows
    its ``default_status`` in code, as Dagster itself reads it.
    """
    value = (stored or "").upper()
    if value in {"RUNNING", "STOPPED"}:
        return value.lower()
    return "running" if default_running else "stopped"


def retraining_state(spec: UseCaseSpec, instance: dg.DagsterInstance) -> dict[str, str]:
    """Each retraining instigator's state (``running`` / ``stopped``), as the UI shows it."""
    defaults = retraining_defaults(spec)
    stored: dict[str, str] = {}
    for state in instance.all_instigator_state():
        if state.name in defaults:
            stored[state.name] = state.status.value
    return {name: shown_state(stored.get(name), defaults[name]) for name in sorted(defaults)}
