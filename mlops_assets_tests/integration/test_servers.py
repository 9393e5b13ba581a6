"""Smoke tests: the real servers start, answer, fail visibly when stopped and come back."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from mlops_assets.storage.objectstore import S3ObjectStore, StorageError
from mlops_assets_tests.harness.mlflow import MLflowServer
from mlops_assets_tests.harness.postgres import PostgresServer
from mlops_assets_tests.harness.s3 import SeaweedS3


def _store(s3: SeaweedS3, uri: str, max_attempts: int = 3) -> S3ObjectStore:
    return S3ObjectStore(
        uri=uri,
        endpoint_url=s3.endpoint_url,
        access_key_id=s3.access_key,
        secret_access_key=s3.secret_key,
        max_attempts=max_attempts,
    )


@pytest.mark.integration
def test_postgres_select_one_and_create_database(postgres_server: PostgresServer) -> None:
    assert postgres_server.url().startswith("postgresql+psycopg2://")
    engine = sa.create_engine(postgres_server.url())
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()

    name = f"smoke_{uuid.uuid4().hex[:8]}"
    url = postgres_server.create_database(name)
    assert postgres_server.create_database(name) == url  # idempotent
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT current_database()")).scalar_one() == name
    finally:
        engine.dispose()
    postgres_server.drop_database(name)


@pytest.mark.integration
def test_s3_object_store_roundtrip(s3_server: SeaweedS3) -> None:
    s3_server.create_bucket("smoke")
    store = _store(s3_server, "s3://smoke/prefix")

    store.put_bytes("a/one.txt", b"one")
    store.put_bytes("a/two.txt", b"two")
    store.put_bytes("b.txt", b"bee")

    assert store.get_bytes("a/one.txt") == b"one"
    assert store.exists("a/two.txt")
    assert [info.key for info in store.list()] == ["a/one.txt", "a/two.txt", "b.txt"]
    assert [info.key for info in store.list("a/")] == ["a/one.txt", "a/two.txt"]
    assert [info.key for info in store.list(start_after="a/one.txt")] == ["a/two.txt", "b.txt"]
    assert store.list("a/")[0].size == 3

    # The prefix is real: the raw bucket holds the keys under it.
    raw = s3_server.client().list_objects_v2(Bucket="smoke")
    assert sorted(item["Key"] for item in raw["Contents"]) == [
        "prefix/a/one.txt",
        "prefix/a/two.txt",
        "prefix/b.txt",
    ]

    store.delete("b.txt")
    assert not store.exists("b.txt")
    with pytest.raises(FileNotFoundError):
        store.get_bytes("b.txt")


@pytest.mark.integration
def test_s3_stopped_store_raises_storage_error_then_recovers(s3_server: SeaweedS3) -> None:
    s3_server.create_bucket("fault")
    store = _store(s3_server, "s3://fault/prefix", max_attempts=1)
    store.put_bytes("before.bin", b"kept")
    ports = (s3_server.s3_port, s3_server.master_port, s3_server.filer_port)

    s3_server.stop()
    try:
        assert not s3_server.is_running()
        with pytest.raises(StorageError) as failure:
            store.put_bytes("during/key.bin", b"lost")
        message = str(failure.value)
        assert s3_server.endpoint_url in message
        assert "s3://fault/prefix/during/key.bin" in message
    finally:
        s3_server.start()

    assert (s3_server.s3_port, s3_server.master_port, s3_server.filer_port) == ports
    store.put_bytes("after.bin", b"back")
    assert store.get_bytes("after.bin") == b"back"
    assert store.get_bytes("before.bin") == b"kept"  # same data dir across the restart
    assert not store.exists("during/key.bin")


@pytest.mark.integration
def test_mlflow_run_goes_to_postgres_and_s3(
    mlflow_server: MLflowServer,
    postgres_server: PostgresServer,
    s3_server: SeaweedS3,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=mlflow_server.url)
    experiment_id = client.create_experiment(f"smoke-{uuid.uuid4().hex[:8]}")
    run_id = client.create_run(experiment_id).info.run_id
    client.log_metric(run_id, "rmse", 1.25)
    note = tmp_path / "note.txt"
    note.write_text("hello from the smoke test")
    client.log_artifact(run_id, str(note), artifact_path="notes")
    client.set_terminated(run_id)

    assert client.get_run(run_id).data.metrics["rmse"] == 1.25

    # The artifact went through the server into the bucket.
    assert mlflow_server.artifacts_destination == "s3://mlops/mlflow"
    store = _store(s3_server, mlflow_server.artifacts_destination)
    keys = [info.key for info in store.list(f"{experiment_id}/{run_id}/")]
    expected = f"{experiment_id}/{run_id}/artifacts/notes/note.txt"
    assert keys == [expected]
    assert store.get_bytes(expected) == b"hello from the smoke test"

    # The run and its metric are rows in PostgreSQL.
    engine = sa.create_engine(postgres_server.url("mlflow"))
    try:
        with engine.connect() as conn:
            status = conn.execute(
                sa.text("SELECT status FROM runs WHERE run_uuid = :run_id"), {"run_id": run_id}
            ).scalar_one()
            value = conn.execute(
                sa.text(
                    "SELECT value FROM latest_metrics WHERE run_uuid = :run_id AND key = 'rmse'"
                ),
                {"run_id": run_id},
            ).scalar_one()
    finally:
        engine.dispose()
    assert status == "FINISHED"
    assert value == 1.25
