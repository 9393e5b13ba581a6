"""MLflow tracking and registry access, built lazily: the plain client every layer shares.

Keeps the two good ideas of dagster-mlflow (tag each MLflow run with the Dagster run id; log
params in chunks). The Dagster resource (:class:`mlops_assets.components.resources.MlflowTracking`)
wraps one of these; the CLI and the bento build theirs from the environment.

Registered pipelines are loaded through a local cache (:mod:`mlops_assets.registry.model_cache`),
so a daily monitoring run does not import MLflow to load the champion.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlops_assets import names
from mlops_assets.registry import model_cache

PARAM_CHUNK = 100
GC_CHUNK = 500  # run ids per `mlflow gc` call
MLFLOW_COMMAND = (sys.executable, "-m", "mlflow")


class Tracking:
    """Where MLflow tracks runs and registers models.

    Args:
        tracking_uri: Tracking server or database.
        artifact_uri: Artifact root for new experiments on a local database (ignored when the
            tracking server serves artifacts).
        cache_dir: Where registered pipelines are cached on local disk.
    """

    def __init__(self, tracking_uri: str, artifact_uri: str, cache_dir: Path) -> None:
        self.tracking_uri = tracking_uri
        self.artifact_uri = artifact_uri
        self.cache_dir = Path(cache_dir)
        self._client: Any = None

    def uri(self) -> str:
        """The tracking URI."""
        return self.tracking_uri

    def is_server(self) -> bool:
        """Whether tracking is a server (it stores artifacts and runs where it is configured)."""
        return self.uri().startswith(("http://", "https://", "databricks"))

    def client(self) -> Any:
        """An ``MlflowClient`` for this tracking URI (mlflow imported on first use)."""
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(tracking_uri=self.uri(), registry_uri=self.uri())
        return self._client

    def activate(self, experiment: str) -> str:
        """Point the fluent API at this server and experiment; returns the experiment id."""
        import mlflow

        mlflow.set_tracking_uri(self.uri())
        mlflow.set_registry_uri(self.uri())
        client = self.client()
        found = client.get_experiment_by_name(experiment)
        if found is None:
            local = not self.is_server()
            location = f"{self.artifact_uri.rstrip('/')}/{experiment}" if local else None
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
            all_tags[names.DAGSTER_RUN_TAG] = dagster_run_id
        with mlflow.start_run(run_name=run_name, tags=all_tags) as run:
            yield run

    @staticmethod
    def log_params(params: dict[str, Any]) -> None:
        """Log params in chunks (MLflow caps one batch at 100)."""
        import mlflow

        items = list(params.items())
        for start in range(0, len(items), PARAM_CHUNK):
            mlflow.log_params(dict(items[start : start + PARAM_CHUNK]))

    @staticmethod
    def log_dict(value: dict[str, Any], name: str) -> None:
        """Log a JSON artifact to the active run."""
        import mlflow

        mlflow.log_dict(value, name)

    @staticmethod
    def log_metrics(metrics: dict[str, float]) -> None:
        """Log metrics of the active run."""
        import mlflow

        mlflow.log_metrics(metrics)

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

    def versions(self, model_name: str) -> dict[str, Any]:
        """Every registered version of a model, by version number."""
        found = self.client().search_model_versions(f"name = '{model_name}'")
        return {str(v.version): v for v in found}

    def run_tags(self, run_id: str | None) -> dict[str, str]:
        """The tags of an MLflow run (empty for a run deleted from tracking, or none)."""
        if not run_id:
            return {}
        try:
            return dict(self.client().get_run(run_id).data.tags)
        except Exception:  # noqa: BLE001 - a deleted run must not block serving its model
            return {}

    def fail_runs_of(self, dagster_run_ids: list[str]) -> list[str]:
        """End FAILED the MLflow runs still RUNNING of Dagster runs that died, nested ones too.

        A killed run never reaches the code that ends its MLflow run, so its tuning run and
        trial runs would stay RUNNING. Returns the MLflow run ids ended.
        """
        if not dagster_run_ids:
            return []
        client = self.client()
        experiments = [e.experiment_id for e in client.search_experiments()]
        if not experiments:
            return []
        ended: list[str] = []
        for dagster_run_id in dagster_run_ids:
            found = client.search_runs(
                experiments,
                filter_string=f"tags.`{names.DAGSTER_RUN_TAG}` = '{dagster_run_id}'",
            )
            parents = [run.info.run_id for run in found]
            children = [
                run
                for parent in parents
                for run in client.search_runs(
                    experiments,
                    filter_string=f"tags.`mlflow.parentRunId` = '{parent}' "
                    "and attributes.status = 'RUNNING'",
                )
            ]
            for run in [*children, *found]:
                if run.info.status == "RUNNING":
                    client.set_terminated(run.info.run_id, status="FAILED")
                    ended.append(run.info.run_id)
        return ended

    def trial_runs_of(self, experiment: str, studies: set[str]) -> list[str]:
        """Ids of the trial runs (nested runs) under the tuning runs of Optuna ``studies``.

        A tuning run (``tuned_model``'s, or a ``tune-worker``'s) carries its study's name as a
        tag and one nested run per trial. Only the trial runs are listed: the tuning run holds
        the registered model's artifacts and the tuning summary.
        """
        client = self.client()
        found = client.get_experiment_by_name(experiment)
        if found is None or not studies:
            return []
        trials: list[str] = []
        for parent in self._runs(found.experiment_id, f"tags.`{names.STUDY_TAG}` != ''"):
            if parent.data.tags.get(names.STUDY_TAG) in studies:
                nested = f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
                trials += [run.info.run_id for run in self._runs(found.experiment_id, nested)]
        return trials

    def _runs(self, experiment_id: str, filter_string: str) -> Iterator[Any]:
        """Every run of an experiment matching a filter, page by page."""
        token = None
        while True:
            page = self.client().search_runs(
                [experiment_id], filter_string=filter_string, max_results=1000, page_token=token
            )
            yield from page
            token = page.token
            if not token:
                return

    def delete_runs(self, run_ids: list[str]) -> int:
        """Delete runs; where tracking is a database (not a server), for good.

        The API's delete marks a run ``deleted`` (hidden, still stored). With the database at
        hand, ``mlflow gc`` then removes them and their artifacts; a tracking server's operator
        runs ``mlflow gc`` against its backend store instead.
        """
        client = self.client()
        for run_id in run_ids:
            client.delete_run(run_id)
        if run_ids and not self.is_server():
            for start in range(0, len(run_ids), GC_CHUNK):
                chunk = run_ids[start : start + GC_CHUNK]
                subprocess.run(
                    [
                        *MLFLOW_COMMAND,
                        "gc",
                        "--backend-store-uri",
                        self.uri(),
                        "--run-ids",
                        ",".join(chunk),
                    ],
                    check=True,
                    capture_output=True,
                )
        return len(run_ids)

    def load_pipeline(self, model_name: str, version: str) -> Any:
        """The registered scikit-learn pipeline of one version (through the local cache)."""
        return model_cache.load_version(self.uri(), self.cache_dir, model_name, version)


def _not_found(error: Exception) -> bool:
    code = getattr(error, "error_code", "")
    text = str(error)
    return code in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"} or "not found" in text
