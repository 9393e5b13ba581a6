"""Resources for the environment, chosen in one place when definitions load (not at import).

Local folders and SQLite under ``MLOPS_HOME`` by default; ``s3://`` storage and a tracking
server when the environment says so. Credentials are only ever ``dg.EnvVar`` references.
"""

from __future__ import annotations

import os
from typing import Any

import dagster as dg

from mlops_assets import settings
from mlops_assets.ingest.landing import LandingZone
from mlops_assets.registry.lock import RetrainLock
from mlops_assets.registry.mlflow_resource import MlflowTracking
from mlops_assets.storage.resources import ObjectStorage, ParquetIOManager
from mlops_assets.training.assets import OptunaStorage

S3_ENV = {
    "endpoint_url": "AWS_ENDPOINT_URL",
    "access_key_id": "AWS_ACCESS_KEY_ID",
    "secret_access_key": "AWS_SECRET_ACCESS_KEY",
    "region": "AWS_REGION",
}


def object_storage(uri: str) -> ObjectStorage:
    """Storage at ``uri``; for S3, endpoint and credentials come from the standard variables."""
    if not settings.is_s3(uri):
        return ObjectStorage(uri=uri)
    options: dict[str, Any] = {
        field: dg.EnvVar(variable) for field, variable in S3_ENV.items() if os.environ.get(variable)
    }
    return ObjectStorage(uri=uri, **options)


def resources_for_environment() -> dict[str, Any]:
    """The resources every use case's assets, sensors and jobs need."""
    lake = object_storage(settings.storage_uri())
    return {
        "io_manager": ParquetIOManager(storage=lake),
        "lake": lake,
        "landing": LandingZone(storage=object_storage(settings.landing_uri())),
        "mlflow": MlflowTracking(),
        "optuna_storage": OptunaStorage(),
        "retrain_lock": RetrainLock(),
    }
