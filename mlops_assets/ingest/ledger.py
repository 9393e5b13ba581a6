"""The ingestion ledger: one entry per landed file version that ``raw_data`` has read.

The one record of what was ingested, for every use case alike. ``raw_data`` writes an entry for
each file version it read (landing day, file, version digest, the first and last partition its
rows fall on); the landing sensor and ``mlops refresh`` read the ledger to tell new files from
ingested ones, and ``raw_data`` reads the spans to skip files that hold no row of its range (a
daily extract's run does not read a years-long history file again). Neither scans Dagster's run
history, so their work does not grow with it.

Entries are empty-bodied-enough objects under ``<storage>/<use_case>/ingestion_ledger/``, named
``<landing day>/<digest>_<first>_<last>.json``: one listing gives every entry with its span, and
a listing that starts at a landing day gives only the entries of that day and later. The body
records the file's key, the rows read and the run that read it, for people.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass

from mlops_assets import names
from mlops_assets.specs.model import UseCaseSpec
from mlops_assets.storage.objectstore import ObjectInfo, ObjectStore

NO_DAY = "none"
SUFFIX = ".json"


@dataclass(frozen=True)
class IngestedFile:
    """One landed file version as ``raw_data`` read it."""

    landing_day: str
    digest: str
    first: str | None  # first partition its rows fall on (None: no row with a readable day)
    last: str | None
    key: str = ""
    rows: int = 0
    run_id: str = ""

    @property
    def span(self) -> tuple[str, str] | None:
        """The partitions its rows fall on, or ``None``."""
        return (self.first, self.last) if self.first and self.last else None


def file_digest(info: ObjectInfo) -> str:
    """Names one version of a landed file (key, size and change token)."""
    payload = json.dumps([info.key, info.size, info.version])
    return hashlib.sha1(payload.encode()).hexdigest()[:20]


def entry_key(spec: UseCaseSpec, entry: IngestedFile) -> str:
    """Object key of a ledger entry."""
    first, last = entry.first or NO_DAY, entry.last or NO_DAY
    name = f"{entry.digest}_{first}_{last}{SUFFIX}"
    return f"{names.ingestion_prefix(spec.name)}{entry.landing_day}/{name}"


def record_files(store: ObjectStore, spec: UseCaseSpec, entries: list[IngestedFile]) -> None:
    """Write the entries of the file versions a run has read."""
    at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    for entry in entries:
        body = {**asdict(entry), "at": at}
        store.put_bytes(entry_key(spec, entry), json.dumps(body, sort_keys=True).encode())


def _parse(prefix: str, info: ObjectInfo) -> IngestedFile | None:
    relative = info.key[len(prefix) :]
    day, _, name = relative.partition("/")
    parts = name.removesuffix(SUFFIX).split("_")
    if not name.endswith(SUFFIX) or len(parts) != 3:
        return None
    digest, first, last = parts
    return IngestedFile(
        landing_day=day,
        digest=digest,
        first=None if first == NO_DAY else first,
        last=None if last == NO_DAY else last,
    )


def ingested_files(
    store: ObjectStore, spec: UseCaseSpec, since: str | None = None
) -> dict[str, IngestedFile]:
    """Ledger entries by file digest, of landing days from ``since`` on (all if ``None``).

    One listing; with ``since`` it starts at that landing day's entries (S3's ``StartAfter``).
    """
    prefix = names.ingestion_prefix(spec.name)
    start_after = f"{prefix}{since}" if since else None
    found: dict[str, IngestedFile] = {}
    for info in store.list(prefix, start_after=start_after):
        entry = _parse(prefix, info)
        if entry is not None:
            found[entry.digest] = entry
    return found
