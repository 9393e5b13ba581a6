"""Dagster resources, built from the one resolved :class:`~mlops_assets.environment.Environment`.

Each resource is configured with the values in force (where tracking, storage and the landing
zone are), so the UI's resource pages show them; values that may hold secrets (database URLs,
S3 keys) are ``dg.EnvVar`` references to the variable they came from. A resource hands asset
code the plain client of the library below (an object store, the landing zone, MLflow tracking,
the retrain locks), the same clients the CLI and the bento build from the environment.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field, PrivateAttr
from typing_extensions import override

from mlops_assets.bentos.build import BentoStore
from mlops_assets.components.runs import HEARTBEAT_RESOURCE, RunHeartbeat
from mlops_assets.environment import Environment
from mlops_assets.ingest.landing import LandingZone as PlainLandingZone
from mlops_assets.monitoring.alerts import Alert, AlertWebhook
from mlops_assets.registry.lock import RetrainLockError, RetrainLocks
from mlops_assets.registry.tracking import Tracking
from mlops_assets.storage.objectstore import ObjectStore, open_store
from mlops_assets.storage.tables import CorruptTableError, read_table, table_key, write_table

STORAGE_RETRY_POLICY = dg.RetryPolicy(
    max_retries=4, delay=1, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)
"""Retries of the steps that read and write object storage, 1, 3, 7 and 15 s (each +-1 s) after
a failure: an outage of up to about 25 s (a restarting MinIO, a network blip) does not fail the
run. Failures that a retry cannot fix are raised as ``dg.Failure(allow_retries=False)``
(:func:`fails_at_once`)."""

DETERMINISTIC_READ_ERRORS = (CorruptTableError, FileNotFoundError)
"""Reading again gives the same error: a corrupt stored table, a missing one."""


@contextmanager
def fails_at_once(what: str = "") -> Iterator[None]:
    """Turn a read error that retrying cannot fix into a failure that refuses retries.

    The storage retry policy retries any exception: a truncated ``clean_data/<day>.parquet``
    was read five times over 26 s before the run failed with pyarrow's "magic bytes not
    found", naming neither the day nor the object. The error already names the object (its
    full location, partition included); ``what`` adds the step's view of it.
    """
    try:
        yield
    except DETERMINISTIC_READ_ERRORS as error:
        fix = (
            "re-materialize that partition (or delete the object) and run again"
            if isinstance(error, CorruptTableError)
            else "materialize it first"
        )
        raise dg.Failure(
            description=f"{what + ': ' if what else ''}{error} (not retried: {fix})",
            allow_retries=False,
        ) from error


class ObjectStorage(dg.ConfigurableResource):
    """A local folder or an ``s3://bucket/prefix``; credentials only from the environment."""

    uri: str = Field(description="Folder path or s3://bucket/prefix.")
    endpoint_url: str | None = Field(
        default=None, description="S3 endpoint (MinIO, SeaweedFS); from AWS_ENDPOINT_URL."
    )
    access_key_id: str | None = Field(default=None, description="From AWS_ACCESS_KEY_ID.")
    secret_access_key: str | None = Field(default=None, description="From AWS_SECRET_ACCESS_KEY.")
    region: str | None = Field(default=None, description="S3 region (default us-east-1).")

    _store: ObjectStore | None = PrivateAttr(default=None)

    def store(self) -> ObjectStore:
        """The object store, opened on first use."""
        if self._store is None:
            options = {
                "endpoint_url": self.endpoint_url,
                "access_key_id": self.access_key_id,
                "secret_access_key": self.secret_access_key,
                "region": self.region,
            }
            s3 = {k: v for k, v in options.items() if v} if self.uri.startswith("s3://") else {}
            self._store = open_store(self.uri, **s3)
        return self._store


class LandingZone(dg.ConfigurableResource):
    """Where batches land: ``<landing>/<use_case>/<YYYY-MM-DD>/<file>``."""

    storage: ObjectStorage = Field(description="Folder or s3:// prefix of the landing zone.")

    def zone(self) -> PlainLandingZone:
        """The landing zone's plain client."""
        return PlainLandingZone(self.storage.store())


class MlflowTracking(dg.ConfigurableResource):
    """Where MLflow tracks runs and registers models."""

    tracking_uri: str = Field(description="Tracking server or database.")
    artifact_uri: str = Field(
        description="Artifact root for new experiments on a local database (ignored when the "
        "tracking server serves artifacts)."
    )
    model_cache: str = Field(description="Local folder caching registered pipelines.")

    _tracking: Tracking | None = PrivateAttr(default=None)

    def tracking(self) -> Tracking:
        """The plain MLflow client (mlflow imported on first use)."""
        if self._tracking is None:
            self._tracking = Tracking(self.tracking_uri, self.artifact_uri, Path(self.model_cache))
        return self._tracking


class OptunaStorage(dg.ConfigurableResource):
    """Where Optuna keeps studies, so a crashed tuning run resumes its study."""

    url: str = Field(description="SQLAlchemy URL of Optuna's own database (not MLflow's).")
    workers: int = Field(
        default=1,
        ge=1,
        description="Worker processes sharing a study by default (more need PostgreSQL).",
    )


class RetrainLock(dg.ConfigurableResource):
    """Excludes concurrent retraining runs of a use case, for the length of a run.

    Retrain assets call :meth:`acquire` first thing; the lock is released when the run (or,
    with a multiprocess executor, the step) ends. A run that finds the lock held fails at once
    without retries (waiting and retraining afterwards would repeat the other run's work).
    """

    url: str | None = Field(
        default=None,
        description="PostgreSQL URL for advisory locks (every process of the deployment must "
        "use the same database); unset: file locks under lock_dir.",
    )
    lock_dir: str = Field(description="Folder of the file locks.")

    _locks: RetrainLocks | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Remember the run, so a lock names the run that holds it."""
        run_id = context.run.run_id if context.run is not None else None
        self._locks = RetrainLocks(self.url, Path(self.lock_dir), run_id)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """Release every lock the run took, whether it succeeded or failed."""
        if self._locks is not None:
            self._locks.release_all()

    def locks(self) -> RetrainLocks:
        """The run's locks (also usable outside a run)."""
        if self._locks is None:
            self._locks = RetrainLocks(self.url, Path(self.lock_dir))
        return self._locks

    def backend(self) -> str:
        """Which backend is in force: ``postgres`` or ``file``."""
        return self.locks().backend()

    def acquire(self, use_case: str) -> None:
        """Hold ``use_case``'s lock until the run ends (see :class:`RetrainLocks`).

        Raises:
            dg.Failure: Another run holds it (no retries).
        """
        try:
            self.locks().acquire(use_case)
        except RetrainLockError as error:
            raise dg.Failure(description=str(error), allow_retries=False) from error

    def release_all(self) -> None:
        """Release every lock held."""
        self.locks().release_all()


class BentoStoreResource(dg.ConfigurableResource):
    """The BentoML store and the bento's source folder."""

    home: str = Field(description="The BentoML home (models and bentos).")
    source: str = Field(description="The bento's service source and build file (bento/).")

    def store(self, mlflow: MlflowTracking) -> BentoStore:
        """The use case's bentos, with the registry they import champions from."""
        return BentoStore(Path(self.home), Path(self.source), mlflow.tracking())


class PredictionLogSettings(dg.ConfigurableResource):
    """Where the service's prediction log is: the asset storage, or a database table."""

    database: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the database holding the log; unset: the asset storage.",
    )

    def database_url(self) -> str | None:
        """The database URL, or ``None`` for the storage."""
        return self.database or None


class AlertWebhookResource(dg.ConfigurableResource):
    """Where alerts are posted (see :mod:`mlops_assets.monitoring.alerts`); unset: nowhere."""

    url: str | None = Field(
        default=None,
        description="Webhook receiving alerts as JSON (from MLOPS_ALERT_WEBHOOK); unset: none.",
    )

    def webhook(self) -> AlertWebhook:
        """The plain sender."""
        return AlertWebhook(self.url)

    def send(self, alert: Alert, log: Any = None) -> bool:
        """Post ``alert`` if a webhook is set; a failure is logged to ``log``, never raised."""
        return self.webhook().send(alert, log)


class ParquetIOManager(dg.ConfigurableIOManager):
    """Stores every table asset as Parquet, one object per partition, never a pickle."""

    storage: ObjectStorage = Field(description="Where the tables are stored.")

    def _key(self, context: dg.OutputContext | dg.InputContext, partition: str | None) -> str:
        return table_key(context.asset_key.path, partition)

    @override
    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        if isinstance(obj, dict) and context.has_asset_partitions:
            self._handle_partitions(context, obj)
            return
        if not isinstance(obj, pd.DataFrame):
            raise TypeError(
                f"{context.asset_key.to_user_string()}: ParquetIOManager stores DataFrames, "
                f"got {type(obj).__name__}"
            )
        partition = context.partition_key if context.has_partition_key else None
        key = self._key(context, partition)
        size = write_table(self.storage.store(), key, obj)
        context.add_output_metadata(
            {"uri": self.storage.store().describe(key), "bytes": size, "rows": len(obj)}
        )

    def _handle_partitions(self, context: dg.OutputContext, frames: dict[str, Any]) -> None:
        """A run over a partition range: one object per partition key of ``frames``.

        Partitions of the range missing from ``frames`` (a day with no rows) are not written.
        """
        unknown = sorted(set(frames) - set(context.asset_partition_keys))
        if unknown:
            raise ValueError(
                f"{context.asset_key.to_user_string()}: partitions {unknown[:5]} are not in "
                "this run's range"
            )
        store = self.storage.store()
        size = 0
        for partition, frame in sorted(frames.items()):
            size += write_table(store, self._key(context, partition), frame)
        context.add_output_metadata(
            {
                "uri": store.describe(self._key(context, None).removesuffix(".parquet") + "/"),
                "bytes": size,
                "rows": sum(len(f) for f in frames.values()),
                "partitions_written": len(frames),
            }
        )

    @override
    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        store = self.storage.store()
        with fails_at_once(f"input {context.asset_key.to_user_string()}"):
            if not context.has_asset_partitions:
                return read_table(store, self._key(context, None))
            frames = []
            for partition in context.asset_partition_keys:
                key = self._key(context, partition)
                if store.exists(key):
                    frames.append(read_table(store, key))
            if not frames:
                raise FileNotFoundError(
                    f"none of the partitions {list(context.asset_partition_keys)[:5]}... is "
                    f"stored in {store.uri}"
                )
        return pd.concat(frames, ignore_index=True)


def _setting(env: Environment, name: str, value: Any) -> Any:
    """A value for a resource field: an ``EnvVar`` when it came from a secret-bearing variable."""
    variable = env.from_variables.get(name)
    return dg.EnvVar(variable) if variable else value


def object_storage(env: Environment, uri: str) -> ObjectStorage:
    """Storage at ``uri``; for S3, endpoint and credentials from the standard variables."""
    if not uri.startswith("s3://"):
        return ObjectStorage(uri=uri)
    s3 = {field: _setting(env, field, value) for field, value in env.s3.items()}
    if "endpoint_url" in env.s3:
        s3["endpoint_url"] = env.s3["endpoint_url"]  # an address, shown in the UI
    if "region" in env.s3:
        s3["region"] = env.s3["region"]
    return ObjectStorage(uri=uri, **s3)


def resources_for(env: Environment) -> dict[str, Any]:
    """The resources every use case's assets, sensors and jobs need."""
    lake = object_storage(env, env.storage_uri)
    return {
        "io_manager": ParquetIOManager(storage=lake),
        "lake": lake,
        "landing": LandingZone(storage=object_storage(env, env.landing_uri)),
        "mlflow": MlflowTracking(
            tracking_uri=env.tracking_uri,
            artifact_uri=env.artifact_uri,
            model_cache=str(env.model_cache),
        ),
        "optuna_storage": OptunaStorage(
            url=_setting(env, "optuna_url", env.optuna_url), workers=env.optuna_workers
        ),
        "retrain_lock": RetrainLock(
            url=_setting(env, "lock_url", env.lock_url), lock_dir=str(env.lock_dir)
        ),
        "prediction_log": PredictionLogSettings(
            database=_setting(env, "prediction_log_database", env.prediction_log_database)
        ),
        "bentos": BentoStoreResource(home=str(env.bentoml_home), source=str(env.bento_source)),
        HEARTBEAT_RESOURCE: RunHeartbeat(),
        "alerts": AlertWebhookResource(url=_setting(env, "alert_webhook", env.alert_webhook)),
    }


def executor_for(env: Environment) -> dg.ExecutorDefinition:
    """Executor of the jobs that do not choose one (the retrain jobs): ``MLOPS_RETRAIN_EXECUTOR``.

    ``in_process`` (default: one process, no per-step start-up cost), ``multiprocess`` (a
    process per step) or ``k8s`` (``dagster_k8s.k8s_job_executor``: a pod per step, configured
    by ``deploy/k8s/run_config.yaml``; needs the dagster-k8s package).
    """
    if env.retrain_executor == "multiprocess":
        return dg.multiprocess_executor
    if env.retrain_executor == "k8s":
        try:
            from dagster_k8s import k8s_job_executor
        except ImportError:
            raise ValueError(
                "MLOPS_RETRAIN_EXECUTOR=k8s needs the dagster-k8s package (pip install "
                "dagster-k8s, same release as dagster)"
            ) from None
        return k8s_job_executor
    return dg.in_process_executor


QUIET_RUNS = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
"""Default run config of the location's jobs: a run prints warnings and errors to its terminal.

A run the daemon launches prints to the terminal of ``make dev`` (or a container's log); with no
logger configured, Dagster prints every event of every run at DEBUG there, a flood of
``STEP_START`` lines. The run's event log in the UI keeps every event and message whatever this
says; ``loggers: {console: {config: {log_level: INFO}}}`` in a run's config brings them back to
the terminal (the Launchpad shows this default, to edit)."""
