"""The production configuration on the session's real servers, shared by the integration tests.

The code location is pointed at the servers by environment variables only, as a deployment
would be: tables and the landing zone in a bucket, the Dagster instance's run, event-log and
schedule storage in PostgreSQL (``dagster-postgres``, its own database), MLflow's tracking
server (artifacts in the bucket), Optuna's study in PostgreSQL (its own database) with two
worker processes, and the retrain lock as a PostgreSQL advisory lock (derived from Optuna's
database). The BigMart flow (land three generated days, ``mlops_assets.ops.launch.refresh``)
runs once per session, the first time a test asks for the stack.
"""

from __future__ import annotations

import datetime as dt
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from mlops_assets_tests.harness.homes import point_at_home
from mlops_assets_tests.harness.mlflow import MLflowServer
from mlops_assets_tests.harness.postgres import PostgresServer
from mlops_assets_tests.harness.s3 import SeaweedS3

UC = "bigmart_sales"
BUCKET = "prodflow"
DAGSTER_DATABASE = "prodflow_dagster"
OPTUNA_DATABASE = "prodflow_optuna"
DAYS, ROWS, TRIALS, SEED = 3, 300, 4, 5

_stacks: dict[tuple[int, int, int], ProductionStack] = {}


@dataclass
class ProductionStack:
    """The environment of the deployed code location, and what the shared flow produced."""

    home: Path
    env: dict[str, str]
    postgres: PostgresServer
    s3: SeaweedS3
    mlflow: MLflowServer
    instance: dg.DagsterInstance | None = None
    days: list[str] = field(default_factory=list)
    flow: Any = None  # the RefreshOutcome of the shared flow
    flow_seconds: float = 0.0
    champion_after_flow: str | None = None  # the version the alias pointed at right after it
    # When it ended (local time, as Optuna stamps trials): later tests on the same data resume
    # the same study (a retrain with the tracking server down adds failed trials).
    flow_ended_at: dt.datetime | None = None

    def apply(self, patch: pytest.MonkeyPatch) -> None:
        """Point this process at the stack (and nothing else), for one test."""
        point_at_home(patch, self.home)
        for name, value in self.env.items():
            patch.setenv(name, value)

    def environment(self) -> Any:
        """The :class:`~mlops_assets.environment.Environment` of the stack (once applied)."""
        from mlops_assets.environment import Environment

        return Environment.from_env()

    def store(self, prefix: str = "") -> Any:
        """The bucket (or a prefix of it) as an object store, with the test credentials."""
        from mlops_assets.storage.objectstore import S3ObjectStore

        return S3ObjectStore(
            f"s3://{BUCKET}/{prefix}".rstrip("/"),
            endpoint_url=self.s3.endpoint_url,
            access_key_id=self.s3.access_key,
            secret_access_key=self.s3.secret_key,
        )

    def definitions(self) -> dg.Definitions:
        """The code location as Dagster loads it, in the current (stack) environment."""
        from mlops_assets.ops.launch import load_definitions

        return load_definitions()

    def spec(self) -> Any:
        """The BigMart use case."""
        from mlops_assets.specs import use_case_specs

        return use_case_specs()[UC]

    def query(self, database: str, sql: str, **params: Any) -> list[tuple]:
        """Rows of a query on one of the stack's PostgreSQL databases."""
        conn = self.postgres.connect(database)
        try:
            with conn.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchall()
        finally:
            conn.close()


def _dagster_yaml(postgres: PostgresServer) -> str:
    """The deployed instance: run, event-log and schedule storage in PostgreSQL."""
    return textwrap.dedent(
        f"""\
        storage:
          postgres:
            postgres_db:
              username: {{env: POSTGRES_USER}}
              password: {{env: POSTGRES_PASSWORD}}
              hostname: {{env: POSTGRES_HOST}}
              port: {{env: POSTGRES_PORT}}
              db_name: {DAGSTER_DATABASE}
              scheme: postgresql+psycopg2
        telemetry:
          enabled: false
        """
    )


def production_stack(
    postgres: PostgresServer,
    s3: SeaweedS3,
    mlflow: MLflowServer,
    tmp_path_factory: pytest.TempPathFactory,
    patch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> ProductionStack:
    """The session's stack, applied to this test's environment; the flow has run once."""
    key = (id(postgres), id(s3), id(mlflow))
    stack = _stacks.get(key)
    if stack is None:
        home = tmp_path_factory.mktemp("production") / "mlops"
        dagster_home = home / "dagster"
        dagster_home.mkdir(parents=True)
        (dagster_home / "dagster.yaml").write_text(_dagster_yaml(postgres))
        postgres.create_database(DAGSTER_DATABASE)
        s3.create_bucket(BUCKET)
        env = {
            "DAGSTER_HOME": str(dagster_home),
            "MLOPS_STORAGE_URI": f"s3://{BUCKET}/storage",
            "MLOPS_LANDING_URI": f"s3://{BUCKET}/landing",
            "AWS_ENDPOINT_URL": s3.endpoint_url,
            "AWS_ACCESS_KEY_ID": s3.access_key,
            "AWS_SECRET_ACCESS_KEY": s3.secret_key,
            "AWS_REGION": s3.region,
            "MLFLOW_TRACKING_URI": mlflow.url,
            "MLOPS_OPTUNA_STORAGE": postgres.create_database(OPTUNA_DATABASE),
            "MLOPS_OPTUNA_WORKERS": "2",
            "POSTGRES_USER": postgres.user,
            "POSTGRES_PASSWORD": postgres.password,
            "POSTGRES_HOST": postgres.host,
            "POSTGRES_PORT": str(postgres.port),
            "MLFLOW_DISABLE_TELEMETRY": "true",
        }
        stack = ProductionStack(home=home, env=env, postgres=postgres, s3=s3, mlflow=mlflow)
        _stacks[key] = stack
        request.session.addfinalizer(lambda: _close(stack, key))
    stack.apply(patch)
    if stack.instance is None:
        stack.instance = dg.DagsterInstance.get()
    if stack.flow is None:
        _run_flow(stack)
    return stack


def _run_flow(stack: ProductionStack) -> None:
    """Land generated days in the bucket and refresh: ingest each day, retrain, promote."""
    import time

    from mlops_assets.ops.demo import land_generated_days
    from mlops_assets.ops.launch import refresh

    started = time.monotonic()
    env = stack.environment()
    stack.days = land_generated_days(env, UC, days=DAYS, rows=ROWS, seed=SEED)
    stack.flow = refresh(
        stack.spec(), env, stack.definitions(), stack.instance, n_trials=TRIALS, seed=SEED
    )
    stack.flow_seconds = time.monotonic() - started
    stack.flow_ended_at = dt.datetime.now()
    stack.champion_after_flow = champion_version(stack)


def champion_version(stack: ProductionStack) -> str | None:
    """The version the ``champion`` alias points at on the tracking server now."""
    from mlops_assets.names import CHAMPION
    from mlops_assets.registry.tracking import Tracking

    tracking = Tracking(stack.mlflow.url, stack.mlflow.url, stack.home / "cache" / "models")
    version = tracking.alias_version(UC, CHAMPION)
    return str(version.version) if version is not None else None


def _close(stack: ProductionStack, key: tuple[int, int, int]) -> None:
    _stacks.pop(key, None)
    if stack.instance is not None:
        stack.instance.dispose()
