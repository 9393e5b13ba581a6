"""A small MLflow resource: tracking and registry access, built lazily.

Keeps the two good ideas of dagster-mlflow (tag each MLflow run with the Dagster run id; log
params in chunks) in a typed ``ConfigurableResource`` usable from any asset.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
from dagster_shared.utils.cached_method import cached_method
from pydantic import Field

from mlops_assets import settings

CHAMPION = "champion"
CHALLENGER = "challenger"
PARAM_CHUNK = 100


class MlflowTracking(dg.ConfigurableResource):
    """Where MLflow tracks runs and registers models."""

    tracking_uri: str | None = Field(
        default=None,
        description="Tracking server or database; default MLFLOW_TRACKING_URI or SQLite under "
        "MLOPS_HOME.",
    )
    artifact_uri: str | None = Field(
        default=None,
        description="Artifact root for new experiments on a local database (ignored when the "
        "tracking server serves artifacts).",
    )

    def uri(self) -> str:
        """The tracking URI in force."""
        return self.tracking_uri or settings.mlflow_tracking_uri()

    @cached_method
    def client(self) -> Any:
        """An ``MlflowClient`` for this tracking URI (mlflow imported on first use)."""
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.uri(), registry_uri=self.uri())

    def activate(self, experiment: str) -> str:
        """Point the fluent API at this server and experiment; returns the experiment id."""
        import mlflow

        mlflow.set_tracking_uri(self.uri())
        mlflow.set_registry_uri(self.uri())
        client = self.client()
        found = client.get_experiment_by_name(experiment)
        if found is None:
            local = not self.uri().startswith(("http://", "https://", "databricks"))
            location = None
            if local:
                root = self.artifact_uri or settings.mlflow_artifact_uri()
                location = f"{root.rstrip('/')}/{experiment}"
            experiment_id = client.create_experiment(experiment, artifact_location=location)
        else:
            experiment_id = found.experiment_id
        mlflow.set_experiment(experiment_id=experiment_id)
        return experiment_id

    @contextmanager
    def start_run(
        self, experiment: str, run_name: str, tags: dict[str, str], dagster_run_id: str | None
    ) -> Iterator[Any]:
        """A top-level MLflow run tagged with the Dagster run; ended FAILED if the body raises."""
        import mlflow

        self.activate(experiment)
        all_tags = dict(tags)
        if dagster_run_id:
            all_tags["dagster.run_id"] = dagster_run_id
        with mlflow.start_run(run_name=run_name, tags=all_tags) as run:
            yield run

    @staticmethod
    def log_params(params: dict[str, Any]) -> None:
        """Log params in chunks (MLflow caps one batch at 100)."""
        import mlflow

        items = list(params.items())
        for start in range(0, len(items), PARAM_CHUNK):
            mlflow.log_params(dict(items[start : start + PARAM_CHUNK]))

    def alias_version(self, model_name: str, alias: str) -> Any | None:
        """The model version an alias points at, or ``None`` (no model, no alias)."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client().get_model_version_by_alias(model_name, alias)
        except MlflowException as error:
            if _not_found(error):
                return None
            raise

    def register_version(self, model_name: str, model_info: Any) -> str:
        """Register a logged model as a new version of ``model_name``; returns the version.

        The client calls ``mlflow.register_model`` makes, without its notices printed to
        stderr (they interleave with the CLI's and the demo's output).
        """
        from mlflow.exceptions import MlflowException

        client = self.client()
        try:
            client.create_registered_model(model_name)
        except MlflowException as error:
            if error.error_code not in {"RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"}:
                raise
        version = client.create_model_version(
            model_name,
            source=model_info.model_uri,
            run_id=model_info.run_id,
            model_id=model_info.model_id,
        )
        return str(version.version)

    def load_pipeline(self, model_name: str, version: str) -> Any:
        """The registered scikit-learn pipeline of one version (through the local cache)."""
        from mlops_assets.registry.model_cache import load_version

        return load_version(self, model_name, version)


def _not_found(error: Exception) -> bool:
    code = getattr(error, "error_code", "")
    text = str(error)
    return code in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"} or "not found" in text
