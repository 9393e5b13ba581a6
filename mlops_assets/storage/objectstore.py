"""One interface over a local folder and an S3-compatible bucket.

Writes are whole-or-nothing in both: a local write goes to a temporary file renamed into place,
and an S3 ``PutObject`` is visible only once complete. A reader never sees half an object.
"""

from __future__ import annotations

import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from typing_extensions import override


@dataclass(frozen=True)
class ObjectInfo:
    """A stored object: key relative to the store root, size and a change token (mtime or ETag)."""

    key: str
    size: int
    version: str


class StorageError(RuntimeError):
    """A store operation failed; the message names the store and the key."""


class ObjectStore(ABC):
    """Bytes by key under a root URI."""

    uri: str

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None:
        """Store ``data`` at ``key`` atomically."""

    @abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """Read the object at ``key``; ``FileNotFoundError`` if absent."""

    @abstractmethod
    def list(self, prefix: str = "", start_after: str | None = None) -> list[ObjectInfo]:
        """Objects whose key starts with ``prefix``, sorted by key, optionally after a key."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether an object is stored at ``key``."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object at ``key`` (no error if absent)."""

    def describe(self, key: str) -> str:
        """The full location of a key, for messages."""
        return f"{self.uri.rstrip('/')}/{key}"


class LocalObjectStore(ObjectStore):
    """Objects as files below a folder."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.uri = str(self.root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents and path != self.root:
            raise StorageError(f"key {key!r} escapes the store root {self.root}")
        return path

    @override
    def put_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @override
    def get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        if not path.is_file():
            raise FileNotFoundError(f"no object at {self.describe(key)}")
        return path.read_bytes()

    @override
    def list(self, prefix: str = "", start_after: str | None = None) -> list[ObjectInfo]:
        base = self._path(prefix.rsplit("/", 1)[0]) if "/" in prefix else self.root
        if not base.is_dir():
            return []
        found = []
        for path in self._walk(base, start_after):
            key = path.relative_to(self.root).as_posix()
            if key.startswith(prefix) and (start_after is None or key > start_after):
                try:
                    stat = path.stat()
                except FileNotFoundError:  # deleted while listing
                    continue
                found.append(ObjectInfo(key, stat.st_size, str(stat.st_mtime_ns)))
        return sorted(found, key=lambda info: info.key)

    def _walk(self, folder: Path, start_after: str | None) -> Iterator[Path]:
        """Visible files below ``folder``, skipping folders whose keys all sort before a key.

        Every key in folder ``d`` starts with ``d/``; if ``d/`` sorts before ``start_after``
        and is not a prefix of it, so does every key below it (S3's ``StartAfter`` semantics),
        so listing recent landing days does not walk the old ones.
        """
        for entry in os.scandir(folder):
            path = Path(entry.path)
            if entry.is_dir():
                folder_key = path.relative_to(self.root).as_posix() + "/"
                if (
                    start_after
                    and folder_key < start_after
                    and not start_after.startswith(folder_key)
                ):
                    continue
                yield from self._walk(path, start_after)
            elif entry.is_file() and not entry.name.startswith("."):  # temporary writes
                yield path

    @override
    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    @override
    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


class S3ObjectStore(ObjectStore):
    """Objects in an S3-compatible bucket under a prefix (MinIO, SeaweedFS, AWS)."""

    def __init__(
        self,
        uri: str,
        endpoint_url: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        region: str | None = None,
        max_attempts: int = 3,
    ) -> None:
        without_scheme = uri.removeprefix("s3://")
        self.bucket, _, prefix = without_scheme.partition("/")
        if not self.bucket:
            raise StorageError(f"no bucket in storage URI {uri!r}")
        self.prefix = prefix.strip("/")
        self.uri = uri.rstrip("/")
        self._client_args: dict[str, Any] = {
            "endpoint_url": endpoint_url,
            "aws_access_key_id": access_key_id,
            "aws_secret_access_key": secret_access_key,
            "region_name": region or "us-east-1",
        }
        self._max_attempts = max_attempts
        self._client: Any = None

    @property
    def client(self) -> Any:
        """The boto3 client, built on first use (boto3 costs seconds to import)."""
        if self._client is None:
            import boto3
            from botocore.config import Config

            config = Config(
                retries={"max_attempts": self._max_attempts, "mode": "standard"},
                connect_timeout=5,
                read_timeout=30,
                s3={"addressing_style": "path"},
            )
            self._client = boto3.client("s3", config=config, **self._client_args)
        return self._client

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _fail(self, action: str, key: str, error: Exception) -> StorageError:
        endpoint = self._client_args.get("endpoint_url") or "AWS"
        return StorageError(
            f"object store {endpoint} failed to {action} s3://{self.bucket}/{self._key(key)}: "
            f"{error}"
        )

    @override
    def put_bytes(self, key: str, data: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        except Exception as error:  # botocore raises many unrelated types
            raise self._fail("write", key, error) from error

    @override
    def get_bytes(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            return response["Body"].read()
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
                raise FileNotFoundError(f"no object at {self.describe(key)}") from error
            raise self._fail("read", key, error) from error
        except Exception as error:
            raise self._fail("read", key, error) from error

    @override
    def list(self, prefix: str = "", start_after: str | None = None) -> list[ObjectInfo]:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self._key(prefix)}
        if start_after:
            kwargs["StartAfter"] = self._key(start_after)
        strip = len(self.prefix) + 1 if self.prefix else 0
        found = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(**kwargs):
                for item in page.get("Contents", []):
                    found.append(
                        ObjectInfo(item["Key"][strip:], item["Size"], item["ETag"].strip('"'))
                    )
        except Exception as error:
            raise self._fail("list", prefix, error) from error
        return sorted(found, key=lambda info: info.key)

    @override
    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise self._fail("check", key, error) from error
        except Exception as error:  # unreachable endpoint, timeouts: name the store and key
            raise self._fail("check", key, error) from error

    @override
    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as error:
            raise self._fail("delete", key, error) from error


def open_store(uri: str, **s3_options: Any) -> ObjectStore:
    """A store for a folder path or an ``s3://`` URI."""
    if uri.startswith("s3://"):
        return S3ObjectStore(uri, **s3_options)
    return LocalObjectStore(uri.removeprefix("file://"))
