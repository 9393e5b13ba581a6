"""``mlops serve``: ``bentoml serve`` on the current champions' bento, with the right stores.

The bento fixes the models; the environment handed to ``bentoml serve`` fixes where the stores
are (every location absolute: BentoML runs the service from inside the bento's folder, where a
relative ``MLOPS_HOME`` would point somewhere else).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from mlops_assets.bentos.build import BentoStore
from mlops_assets.environment import Environment
from mlops_assets.specs.model import UseCaseSpec

DEFAULT_PORT = 3001
"""``mlops serve``'s port: not 3000, where ``make dev`` (``dg dev``) serves the Dagster UI, so the
two run side by side on their defaults."""


def bentoml_executable() -> str:
    """``bentoml`` of the running environment, else the one on ``PATH``."""
    candidate = Path(sys.executable).parent / "bentoml"
    if candidate.is_file():
        return str(candidate)
    found = shutil.which("bentoml")
    if found is None:
        raise FileNotFoundError("bentoml is not installed in this environment")
    return found


def serve_environment(env: Environment, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a served bento: the process's, with the stores resolved."""
    return {**(os.environ if base is None else base), **env.serve_variables()}


def serve_command(bento_tag: str, port: int = DEFAULT_PORT, host: str = "127.0.0.1") -> list[str]:
    """The ``bentoml serve`` command line of a bento."""
    return [bentoml_executable(), "serve", bento_tag, "--port", str(port), "--host", host]


def bento_store(env: Environment) -> BentoStore:
    """The BentoML store of the environment, importing champions from its registry."""
    return BentoStore(env.bentoml_home, env.bento_source, env.tracking())


def champion_bento_for_serving(
    spec: UseCaseSpec, env: Environment, log: Callable[[str], None] | None = None
) -> str:
    """The champions' bento tag, building it first if the retrain did not (older champions)."""
    store = bento_store(env)
    if log and store.current_bento_tag(spec) is None:
        log(f"{spec.name}: the champion has no bento yet; building it")
    build = store.ensure_champion_bento(spec)
    if log and build.stale_source:
        log(
            f"warning: {build.bento_tag} was built from older bento/ code; "
            f"`bentoml delete {build.bento_tag}` to rebuild it from the current code"
        )
    return build.bento_tag


def exec_serve(
    env: Environment,
    bento_tag: str,
    port: int,
    host: str,
    follow: bool = True,
    segment: str | None = None,
) -> None:
    """Replace this process by ``bentoml serve`` (signals then reach BentoML directly).

    With ``follow`` (the default of ``mlops serve``) the service follows the ``champion`` alias
    unless the environment already says otherwise; ``--pin`` keeps the bento's own version.
    ``segment``: a segmented use case's service answers for that segment only.
    """
    command = serve_command(bento_tag, port, host)
    variables = serve_environment(env)
    if segment:
        variables["MLOPS_SERVE_SEGMENTS"] = segment
    if follow:
        variables.setdefault("MLOPS_FOLLOW_CHAMPION", "on")
    else:
        variables["MLOPS_FOLLOW_CHAMPION"] = "off"
    os.execve(command[0], command, variables)
