"""Tables as Parquet objects: one object per asset partition, addressed by asset key.

A stored object that is not readable Parquet (an upload cut short, a damaged footer or page,
another file written under the key) is a :class:`CorruptTableError` naming the object, kept
apart from the store's own transient failures
(:class:`~mlops_assets.storage.objectstore.StorageError`): retrying a read can outlast an
unreachable store, never a corrupt object, which has to be rewritten (re-materialized).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import pandas as pd

from mlops_assets.storage.objectstore import ObjectStore


class CorruptTableError(ValueError):
    """A stored table is not readable Parquet; the message names the object's full location."""


def table_key(asset_path: Sequence[str], partition: str | None = None) -> str:
    """Object key of an asset (partition): ``<use_case>/<asset>[/<partition>].parquet``."""
    base = "/".join(asset_path)
    return f"{base}/{partition}.parquet" if partition else f"{base}.parquet"


def write_table(store: ObjectStore, key: str, frame: pd.DataFrame) -> int:
    """Write a frame as one Parquet object; returns its size in bytes."""
    import pyarrow as pa

    return write_arrow(store, key, pa.Table.from_pandas(frame, preserve_index=False))


def write_arrow(store: ObjectStore, key: str, table: Any) -> int:
    """Write an Arrow table as one Parquet object (no pandas on the way); returns its size."""
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    data = buffer.getvalue()
    store.put_bytes(key, data)
    return len(data)


def read_table(store: ObjectStore, key: str, columns: list[str] | None = None) -> pd.DataFrame:
    """Read one Parquet object (all columns, or ``columns``).

    Raises:
        CorruptTableError: The object is not a readable Parquet file.
        FileNotFoundError: No object is stored at ``key``.
        StorageError: The store failed (passed through: a retry may succeed).
    """
    data = store.get_bytes(key)
    try:
        return pd.read_parquet(io.BytesIO(data), columns=columns)
    except MemoryError:
        raise
    except Exception as error:  # pyarrow raises ArrowInvalid, OSError and others for bad bytes
        if columns and _lacks_columns(data, columns):
            raise  # the caller asked for a column the (sound) table does not have
        raise CorruptTableError(
            f"{store.describe(key)} is not a readable Parquet file ({type(error).__name__}: "
            f"{error})"
        ) from error


def _lacks_columns(data: bytes, columns: list[str]) -> bool:
    """Whether a table's footer reads and lacks one of ``columns`` (a caller's mistake)."""
    import pyarrow.parquet as pq

    try:
        names = set(pq.read_schema(io.BytesIO(data)).names)
    except Exception:  # the footer itself is unreadable: corrupt
        return False
    return not set(columns) <= names


def stored_partitions(store: ObjectStore, asset_path: Sequence[str]) -> list[str]:
    """Partition keys that have an object for this asset, sorted."""
    prefix = "/".join(asset_path) + "/"
    return sorted(
        info.key[len(prefix) : -len(".parquet")]
        for info in store.list(prefix)
        if info.key.endswith(".parquet") and "/" not in info.key[len(prefix) :]
    )
