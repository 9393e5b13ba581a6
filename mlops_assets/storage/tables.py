"""Tables as Parquet objects: one object per asset partition, addressed by asset key."""

from __future__ import annotations

import io
from collections.abc import Sequence

import pandas as pd

from mlops_assets.storage.objectstore import ObjectStore


def table_key(asset_path: Sequence[str], partition: str | None = None) -> str:
    """Object key of an asset (partition): ``<use_case>/<asset>[/<partition>].parquet``."""
    base = "/".join(asset_path)
    return f"{base}/{partition}.parquet" if partition else f"{base}.parquet"


def write_table(store: ObjectStore, key: str, frame: pd.DataFrame) -> int:
    """Write a frame as one Parquet object; returns its size in bytes."""
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    data = buffer.getvalue()
    store.put_bytes(key, data)
    return len(data)


def read_table(store: ObjectStore, key: str, columns: list[str] | None = None) -> pd.DataFrame:
    """Read one Parquet object."""
    return pd.read_parquet(io.BytesIO(store.get_bytes(key)), columns=columns)


def stored_partitions(store: ObjectStore, asset_path: Sequence[str]) -> list[str]:
    """Partition keys that have an object for this asset, sorted."""
    prefix = "/".join(asset_path) + "/"
    return sorted(
        info.key[len(prefix) : -len(".parquet")]
        for info in store.list(prefix)
        if info.key.endswith(".parquet") and "/" not in info.key[len(prefix) :]
    )
