"""Session-scoped real servers for the integration suite (see ``mlops_assets_tests.harness``).

Each server starts once per session, on free ports, the first time a test asks for it, and is
stopped (its temporary data removed) at the end of the session, whatever the tests did. Fault
tests may stop a server mid-test: after every test, servers it used that are no longer running
are started again (same ports, same data), so one failing fault test does not take the rest of
the session down with it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mlops_assets_tests.harness.mlflow import MLflowServer
from mlops_assets_tests.harness.postgres import PostgresServer
from mlops_assets_tests.harness.s3 import SeaweedS3

MLFLOW_DATABASE = "mlflow"
MLFLOW_BUCKET = "mlops"
MLFLOW_ARTIFACT_PREFIX = "mlflow"

# Start order matters when restoring: MLflow needs the other two.
_RESTORABLE = ("postgres_server", "s3_server", "mlflow_server")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A running PostgreSQL (``.url(db)``, ``.create_database(name)``) for the session."""
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[SeaweedS3]:
    """A running SeaweedFS S3 server (``.endpoint_url``, ``.access_key``, ``.secret_key``)."""
    server = SeaweedS3()
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def mlflow_server(postgres_server: PostgresServer, s3_server: SeaweedS3) -> Iterator[MLflowServer]:
    """A running MLflow tracking server (``.url``) for the session.

    Its backend store is database ``mlflow`` on ``postgres_server``; artifacts go to
    ``s3://mlops/mlflow`` on ``s3_server``.
    """
    server = MLflowServer.for_servers(
        postgres_server,
        s3_server,
        database=MLFLOW_DATABASE,
        bucket=MLFLOW_BUCKET,
        prefix=MLFLOW_ARTIFACT_PREFIX,
    )
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture(autouse=True)
def _restart_stopped_servers(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test, start again any session server the test used and left stopped."""
    yield
    for name in _RESTORABLE:
        if name not in request.fixturenames:
            continue
        try:
            server = request.getfixturevalue(name)
        except Exception:  # its setup failed: that error is reported already
            continue
        if not server.is_running():
            server.start()
