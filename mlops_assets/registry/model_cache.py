"""Registered pipelines by version, cached on local disk so that loading one skips MLflow.

A version's artifacts never change, so the cache never needs invalidating. Importing MLflow
costs about 5 s here; the daily monitoring run loads the champion from the cache with
cloudpickle alone and asks MLflow only the first time a version is needed on this machine.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

MODEL_FILE = "model.pkl"


def cache_dir(root: Path, model_name: str, version: str) -> Path:
    """Where a version's model files are cached (``<root>/<name>/<version>``)."""
    return Path(root) / model_name / str(version)


def ensure_cached(tracking_uri: str, root: Path, model_name: str, version: str) -> Path:
    """Download a version's model files once; returns the folder holding ``model.pkl``."""
    target = cache_dir(root, model_name, version)
    if (target / MODEL_FILE).exists():
        return target
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{version}-"))
    try:
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{model_name}/{version}", dst_path=str(staging)
        )
        found = next(staging.rglob(MODEL_FILE), None)
        if found is None:
            raise FileNotFoundError(f"models:/{model_name}/{version} has no {MODEL_FILE}")
        os.replace(found.parent, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def load_version(tracking_uri: str, root: Path, model_name: str, version: str) -> Any:
    """The fitted pipeline of one registered version."""
    import cloudpickle

    folder = ensure_cached(tracking_uri, root, model_name, version)
    with open(folder / MODEL_FILE, "rb") as handle:
        return cloudpickle.load(handle)
