"""Dagster resources over object storage: the storage itself and the Parquet IO manager."""

from __future__ import annotations

from typing import Any

import dagster as dg
import pandas as pd
from dagster_shared.utils.cached_method import cached_method
from pydantic import Field
from typing_extensions import override

from mlops_assets.storage.objectstore import ObjectStore, open_store
from mlops_assets.storage.tables import read_table, table_key, write_table

STORAGE_RETRY_POLICY = dg.RetryPolicy(
    max_retries=4, delay=1, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)
"""Retries of the steps that read and write object storage, 1, 3, 7 and 15 s (each +-1 s) after
a failure: an outage of up to about 25 s (a restarting MinIO, a network blip) does not fail the
run. Failures that a retry cannot fix are raised as ``dg.Failure(allow_retries=False)``."""


class ObjectStorage(dg.ConfigurableResource):
    """A local folder or an ``s3://bucket/prefix``; credentials only from the environment."""

    uri: str = Field(description="Folder path or s3://bucket/prefix.")
    endpoint_url: str | None = Field(
        default=None, description="S3 endpoint (MinIO, SeaweedFS); from AWS_ENDPOINT_URL."
    )
    access_key_id: str | None = Field(default=None, description="From AWS_ACCESS_KEY_ID.")
    secret_access_key: str | None = Field(default=None, description="From AWS_SECRET_ACCESS_KEY.")
    region: str | None = Field(default=None, description="S3 region (default us-east-1).")

    @cached_method
    def store(self) -> ObjectStore:
        """The object store, opened on first use."""
        if not self.uri.startswith("s3://"):
            return open_store(self.uri)
        return open_store(
            self.uri,
            endpoint_url=self.endpoint_url,
            access_key_id=self.access_key_id,
            secret_access_key=self.secret_access_key,
            region=self.region,
        )


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
        if not context.has_asset_partitions:
            return read_table(store, self._key(context, None))
        frames = []
        for partition in context.asset_partition_keys:
            key = self._key(context, partition)
            if store.exists(key):
                frames.append(read_table(store, key))
        if not frames:
            raise FileNotFoundError(
                f"{context.asset_key.to_user_string()}: none of the partitions "
                f"{list(context.asset_partition_keys)[:5]}... is stored in {store.uri}"
            )
        return pd.concat(frames, ignore_index=True)
