"""What the registry says about a use case: champion and challenger, with their test metrics."""

from __future__ import annotations

from typing import Any

from mlops_assets.registry.mlflow_resource import CHALLENGER, CHAMPION, MlflowTracking
from mlops_assets.specs.model import UseCaseSpec


def describe_version(version: Any) -> dict[str, Any]:
    """A model version as plain data: number, run, test metrics, promotion tags."""
    tags = dict(version.tags or {})
    return {
        "version": str(version.version),
        "run_id": version.run_id,
        "metrics": {k[len("test_") :]: float(v) for k, v in tags.items() if k.startswith("test_")},
        "tags": {k: v for k, v in tags.items() if not k.startswith("test_")},
        "created_at_ms": version.creation_timestamp,
    }


def use_case_status(spec: UseCaseSpec, mlflow: MlflowTracking) -> dict[str, Any]:
    """Champion and challenger of a use case (``None`` where an alias is unset)."""
    name = spec.registered_model_name()
    result: dict[str, Any] = {
        "use_case": spec.name,
        "model_name": name,
        "primary_metric": spec.primary_metric,
        "tracking_uri": mlflow.uri(),
    }
    for alias in (CHAMPION, CHALLENGER):
        version = mlflow.alias_version(name, alias)
        result[alias] = describe_version(version) if version is not None else None
    return result
