"""The landing zone: ``<landing>/<use_case>/<YYYY-MM-DD>/<file>``, local or in a bucket."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict

from mlops_assets.ingest.days import parse_day
from mlops_assets.ingest.readers import is_readable
from mlops_assets.storage.objectstore import ObjectInfo, ObjectStore


def fingerprint(files: list[ObjectInfo]) -> str:
    """A short digest of a day's files (names, sizes, versions): changes when any file does."""
    payload = json.dumps(sorted((f.key, f.size, f.version) for f in files))
    return hashlib.sha1(payload.encode()).hexdigest()[:16]


class LandingZone:
    """Where batches land; the landing sensor and ``raw_data`` read it.

    Args:
        store: The landing zone's folder or ``s3://`` prefix.
    """

    def __init__(self, store: ObjectStore) -> None:
        self._store = store

    def store(self) -> ObjectStore:
        """The underlying object store."""
        return self._store

    def files_by_day(self, use_case: str, since: str | None = None) -> dict[str, list[ObjectInfo]]:
        """Readable files per landing day (``YYYY-MM-DD``) of a use case.

        Args:
            use_case: The use case whose folder is listed.
            since: First day to list (``YYYY-MM-DD``); older days are not listed at all (one
                listing that starts after ``<use_case>/<since>/``, the way S3's ``StartAfter``
                does). ``None`` lists every day.
        """
        start_after = f"{use_case}/{since}/" if since else None
        days: dict[str, list[ObjectInfo]] = defaultdict(list)
        for info in self.store().list(f"{use_case}/", start_after=start_after):
            parts = info.key.split("/")
            if len(parts) == 3 and parse_day(parts[1]) and is_readable(parts[2]):
                days[parts[1]].append(info)
        return dict(sorted(days.items()))

    def files_for(self, use_case: str, day: str) -> list[ObjectInfo]:
        """Readable files landed for one day."""
        return [
            info
            for info in self.store().list(f"{use_case}/{day}/")
            if is_readable(info.key) and info.key.count("/") == 2
        ]

    def land(self, use_case: str, day: str, name: str, data: bytes) -> str:
        """Put a file into a day's folder; returns its key."""
        key = f"{use_case}/{day}/{name}"
        self.store().put_bytes(key, data)
        return key
