"""The local object store and the Parquet IO manager over it."""

import io
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from mlops_assets.components.resources import ObjectStorage, ParquetIOManager
from mlops_assets.storage.objectstore import LocalObjectStore, StorageError, open_store
from mlops_assets.storage.tables import (
    CorruptTableError,
    read_table,
    stored_partitions,
    table_key,
    write_table,
)


def test_put_get_list_delete(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    store.put_bytes("uc/2025-01-01/a.csv", b"x")
    store.put_bytes("uc/2025-01-02/b.csv", b"yy")
    assert store.get_bytes("uc/2025-01-02/b.csv") == b"yy"
    assert [o.key for o in store.list("uc/")] == ["uc/2025-01-01/a.csv", "uc/2025-01-02/b.csv"]
    assert [o.key for o in store.list("uc/", start_after="uc/2025-01-01/a.csv")] == [
        "uc/2025-01-02/b.csv"
    ]
    store.delete("uc/2025-01-01/a.csv")
    assert not store.exists("uc/2025-01-01/a.csv")
    with pytest.raises(FileNotFoundError, match="uc/2025-01-01/a.csv"):
        store.get_bytes("uc/2025-01-01/a.csv")


def test_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    store.put_bytes("t/x.parquet", b"1")
    store.put_bytes("t/x.parquet", b"2")
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == ["x.parquet"]
    assert store.get_bytes("t/x.parquet") == b"2"


def test_keys_cannot_escape_the_root(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="escapes"):
        LocalObjectStore(tmp_path / "root").put_bytes("../outside", b"x")


def test_open_store_picks_the_backend(tmp_path: Path) -> None:
    assert isinstance(open_store(str(tmp_path)), LocalObjectStore)
    assert open_store("s3://bucket/prefix").uri == "s3://bucket/prefix"


def test_tables_round_trip_and_partitions(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", None]})
    for day in ["2025-01-02", "2025-01-01"]:
        write_table(store, table_key(["uc", "clean_data"], day), frame)
    write_table(store, table_key(["uc", "train_set"]), frame)
    pd.testing.assert_frame_equal(read_table(store, "uc/clean_data/2025-01-01.parquet"), frame)
    assert stored_partitions(store, ["uc", "clean_data"]) == ["2025-01-01", "2025-01-02"]
    assert (tmp_path / "uc" / "train_set.parquet").exists()


def _parquet() -> bytes:
    buffer = io.BytesIO()
    pd.DataFrame({"a": list(range(100)), "b": ["x"] * 100}).to_parquet(buffer, index=False)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "data",
    [
        _parquet()[: len(_parquet()) // 2],  # an upload cut short
        _parquet()[:-12] + b"\x00" * 8 + _parquet()[-4:],  # footer damaged, magic bytes kept
        _parquet()[:8] + b"\xff" * 40 + _parquet()[48:],  # a damaged page
        b"a,b\n1,x\n",  # a CSV stored under a .parquet key
        b"",
    ],
    ids=["truncated", "bad-footer", "bad-page", "csv", "empty"],
)
def test_corrupt_table_names_the_object(tmp_path: Path, data: bytes) -> None:
    """A corrupt object is a ``CorruptTableError`` naming its full location, not ArrowInvalid."""
    store = LocalObjectStore(tmp_path)
    store.put_bytes("uc/clean_data/2025-01-01.parquet", data)
    with pytest.raises(CorruptTableError) as caught:
        read_table(store, "uc/clean_data/2025-01-01.parquet")
    message = str(caught.value)
    assert message.startswith(f"{tmp_path}/uc/clean_data/2025-01-01.parquet is not a readable")
    assert "Parquet file" in message


def test_corrupt_table_is_not_a_storage_error(tmp_path: Path) -> None:
    """Callers retry ``StorageError`` (the store may come back), never a corrupt object."""
    assert issubclass(CorruptTableError, ValueError)
    assert not issubclass(CorruptTableError, StorageError | OSError)

    class Unreachable(LocalObjectStore):
        def get_bytes(self, key: str) -> bytes:
            raise StorageError(f"object store failed to read {self.describe(key)}")

    with pytest.raises(StorageError):
        read_table(Unreachable(tmp_path), "uc/t.parquet")
    with pytest.raises(FileNotFoundError):
        read_table(LocalObjectStore(tmp_path), "uc/absent.parquet")


def test_asking_for_a_column_a_table_lacks_is_not_corruption(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    store.put_bytes("uc/t.parquet", _parquet())
    assert read_table(store, "uc/t.parquet", columns=["b"])["b"].tolist() == ["x"] * 100
    with pytest.raises(Exception, match="zzz") as caught:
        read_table(store, "uc/t.parquet", columns=["zzz"])
    assert not isinstance(caught.value, CorruptTableError)


def test_io_manager_writes_parquet_per_partition(tmp_path: Path) -> None:
    partitions = dg.DailyPartitionsDefinition(start_date="2025-01-01")

    @dg.asset(key=["uc", "table"], partitions_def=partitions)
    def table(context: dg.AssetExecutionContext) -> pd.DataFrame:
        return pd.DataFrame({"day": [context.partition_key]})

    @dg.asset(key=["uc", "everything"], ins={"table": dg.AssetIn(key=["uc", "table"])})
    def everything(table: pd.DataFrame) -> pd.DataFrame:
        return table

    io_manager = ParquetIOManager(storage=ObjectStorage(uri=str(tmp_path)))
    for day in ["2025-01-01", "2025-01-03"]:
        assert dg.materialize(
            [table], partition_key=day, resources={"io_manager": io_manager}
        ).success
    assert sorted(p.name for p in (tmp_path / "uc" / "table").iterdir()) == [
        "2025-01-01.parquet",
        "2025-01-03.parquet",
    ]
    result = dg.materialize(
        [table.to_source_asset(), everything], resources={"io_manager": io_manager}
    )
    # Days never materialised (2025-01-02, and every day after) are skipped, not an error.
    assert sorted(result.output_for_node("uc__everything")["day"]) == ["2025-01-01", "2025-01-03"]


def test_io_manager_refuses_to_pickle(tmp_path: Path) -> None:
    @dg.asset
    def not_a_table() -> dict:
        return {"a": 1}

    io_manager = ParquetIOManager(storage=ObjectStorage(uri=str(tmp_path)))
    with pytest.raises(TypeError, match="stores DataFrames"):
        dg.materialize([not_a_table], resources={"io_manager": io_manager})
