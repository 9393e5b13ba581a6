"""``mlops serve``: ``bentoml serve`` on the current champion's bento, with the right stores.

The bento fixes the model; the environment handed to ``bentoml serve`` fixes where the stores
are. Every location is passed as an absolute path because BentoML runs the service from inside
the bento's folder, where a relative ``MLOPS_HOME`` would point somewhere else.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from mlops_assets import settings
from mlops_assets.registry.mlflow_resource import MlflowTracking
from mlops_assets.specs.model import UseCaseSpec


def bentoml_executable() -> str:
    """``bentoml`` of the running environment, else the one on ``PATH``."""
    candidate = Path(sys.executable).parent / "bentoml"
    if candidate.is_file():
        return str(candidate)
    found = shutil.which("bentoml")
    if found is None:
        raise FileNotFoundError("bentoml is not installed in this environment")
    return found


def serve_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a served bento: stores resolved to absolute locations."""
    env = dict(os.environ if base is None else base)
    env["MLOPS_HOME"] = str(settings.mlops_home())
    env["BENTOML_HOME"] = str(settings.bentoml_home())
    env["MLOPS_STORAGE_URI"] = settings.storage_uri()
    if not settings.is_s3(env["MLOPS_STORAGE_URI"]):
        env["MLOPS_STORAGE_URI"] = str(Path(env["MLOPS_STORAGE_URI"]).resolve())
    env.setdefault("BENTOML_DO_NOT_TRACK", "true")
    return env


def serve_command(bento_tag: str, port: int = 3000, host: str = "127.0.0.1") -> list[str]:
    """The ``bentoml serve`` command line of a bento."""
    return [bentoml_executable(), "serve", bento_tag, "--port", str(port), "--host", host]


def champion_bento_for_serving(
    spec: UseCaseSpec, mlflow: MlflowTracking, log: Callable[[str], None] | None = None
) -> str:
    """The champion's bento tag, building it first if the retrain did not (older champions)."""
    from mlops_assets.serving.bento import current_bento_tag, ensure_champion_bento

    if log and current_bento_tag(spec, mlflow) is None:
        log(f"{spec.name}: the champion has no bento yet; building it")
    build = ensure_champion_bento(spec, mlflow)
    if log and build.stale_source:
        log(
            f"warning: {build.bento_tag} was built from older bento/ code; "
            f"`bentoml delete {build.bento_tag}` to rebuild it from the current code"
        )
    return build.bento_tag


def exec_serve(
    bento_tag: str, port: int, host: str, follow: bool = True, segment: str | None = None
) -> None:
    """Replace this process by ``bentoml serve`` (signals then reach BentoML directly).

    With ``follow`` (the default of ``mlops serve``) the service follows the ``champion`` alias
    unless the environment already says otherwise; ``--pin`` keeps the bento's own version.
    ``segment``: a segmented use case's service answers for that segment only.
    """
    command = serve_command(bento_tag, port, host)
    env = serve_environment()
    if segment:
        env["MLOPS_SERVE_SEGMENTS"] = segment
    if follow:
        env.setdefault("MLOPS_FOLLOW_CHAMPION", "on")
    else:
        env["MLOPS_FOLLOW_CHAMPION"] = "off"
    os.execve(command[0], command, env)
