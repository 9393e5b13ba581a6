"""``mlops migrate``: bring an ``MLOPS_HOME`` from before the one-shape change up to date.

What an older home lacks, and what this builds from what is stored:

- **The ingestion ledger.** Ingested files were recorded in Dagster (``source_fingerprint``
  metadata, or run tags) and, for event-date use cases, in ``<uc>/landing_index/``. Without a
  ledger every landed file looks new, and the landing sensor would ingest the whole landing zone
  again. An entry is written for each landed file that stored ``raw_data`` shows was read (its
  key in a partition's ``_source_file`` column), with the span of the partitions holding its
  rows; the old landing index's spans are taken over as they are.
- **Paused segments** move from the Dagster instance's key-value store to the asset storage.
- **Use cases of outside folders** written as flat ``<name>.yaml`` files become
  ``<name>/defs.yaml`` instances of the ``UseCase`` component (the old file is kept as
  ``<name>.yaml.bak``).
- **Bentos** built from the older service code cannot import the new package: each use case's
  champion bento is rebuilt from the current ``bento/``.

Running it twice changes nothing the second time.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import yaml

from mlops_assets import names
from mlops_assets.bentos.build import BentoBuildError
from mlops_assets.environment import Environment
from mlops_assets.ingest.days import landing_day_of
from mlops_assets.ingest.ledger import IngestedFile, file_digest, ingested_files, record_files
from mlops_assets.monitoring.pauses import paused_segments, set_paused
from mlops_assets.ops.serve import bento_store
from mlops_assets.specs.catalog import use_case_specs
from mlops_assets.specs.model import UseCaseSpec
from mlops_assets.storage.objectstore import ObjectStore
from mlops_assets.storage.tables import read_table, stored_partitions, table_key

OLD_INDEX = "landing_index"
OLD_PAUSED_KEY = "mlops/paused_segments/{}"
SOURCE_FILE = "_source_file"


@dataclass
class MigrationReport:
    """What a migration did, per use case."""

    ledger_entries: dict[str, int] = field(default_factory=dict)
    paused_segments: dict[str, list[str]] = field(default_factory=dict)
    converted_specs: list[str] = field(default_factory=list)
    bentos: dict[str, str] = field(default_factory=dict)


def convert_outside_specs(folders: tuple[Path, ...]) -> list[str]:
    """Flat ``<name>.yaml`` specs of outside folders as ``<name>/defs.yaml`` component instances."""
    converted = []
    for folder in folders:
        for old in sorted(Path(folder).glob("*.yaml")):
            target = old.with_suffix("") / names.DEFS_FILE
            if target.exists():
                continue
            spec = yaml.safe_load(old.read_text())
            target.parent.mkdir(parents=True, exist_ok=True)
            document = {"type": names.COMPONENT_TYPE, "attributes": spec}
            target.write_text(yaml.safe_dump(document, sort_keys=False))
            old.rename(old.with_name(old.name + ".bak"))
            converted.append(str(target))
    return converted


def rows_by_file(store: ObjectStore, spec: UseCaseSpec) -> dict[str, tuple[str, str, int]]:
    """Each landed file that stored ``raw_data`` holds rows of: first and last day, rows."""
    raw = names.asset_path(spec.name, names.RAW_DATA)
    found: dict[str, tuple[str, str, int]] = {}
    for day in stored_partitions(store, raw):
        frame = read_table(store, table_key(raw, day), columns=[SOURCE_FILE])
        for key, rows in frame[SOURCE_FILE].value_counts().items():
            first, last, count = found.get(str(key), (day, day, 0))
            found[str(key)] = (min(first, day), max(last, day), count + int(rows))
    return found


def old_index_spans(store: ObjectStore, spec: UseCaseSpec) -> dict[str, tuple[str, str] | None]:
    """The spans of the event-date landing index kept before the ledger, by file digest."""
    prefix = f"{spec.name}/{OLD_INDEX}/"
    spans: dict[str, tuple[str, str] | None] = {}
    for info in store.list(prefix):
        parts = info.key[len(prefix) :].split("_")
        if len(parts) == 3:
            digest, first, last = parts
            spans[digest] = None if first == "none" else (first, last)
    return spans


def build_ledger(env: Environment, spec: UseCaseSpec) -> int:
    """Ledger entries for the landed files stored ``raw_data`` shows were read; returns count."""
    store = env.lake()
    known = ingested_files(store, spec)
    read = rows_by_file(store, spec)
    indexed = old_index_spans(store, spec)
    entries = []
    for day_files in env.landing_zone().files_by_day(spec.name).values():
        for info in day_files:
            digest = file_digest(info)
            if digest in known or (info.key not in read and digest not in indexed):
                continue
            first, last, rows = read.get(info.key, (None, None, 0))
            span = indexed.get(digest, (first, last) if first else None)
            entries.append(
                IngestedFile(
                    landing_day=landing_day_of(info),
                    digest=digest,
                    first=span[0] if span else None,
                    last=span[1] if span else None,
                    key=info.key,
                    rows=rows,
                    run_id="mlops migrate",
                )
            )
    record_files(store, spec, entries)
    return len(entries)


def move_paused_segments(
    spec: UseCaseSpec, env: Environment, instance: dg.DagsterInstance
) -> list[str]:
    """A segmented use case's paused segments, from the instance into the asset storage."""
    if not spec.segments:
        return []
    key = OLD_PAUSED_KEY.format(spec.name)
    stored = instance.run_storage.get_cursor_values({key}).get(key)
    old = [name for name in json.loads(stored) if name in spec.segment_names] if stored else []
    if old:
        set_paused(env.lake(), spec, old, paused=True)
        instance.run_storage.set_cursor_values({key: json.dumps([])})
    return paused_segments(env.lake(), spec)


def rebuild_stale_bento(spec: UseCaseSpec, env: Environment) -> str:
    """The champions' bento, rebuilt if it was built from older service code."""
    store = bento_store(env)
    try:
        build = store.ensure_champion_bento(spec)
    except BentoBuildError:
        return "no champion"
    if not build.stale_source:
        return f"{build.bento_tag} (current)"
    store.api().bentos.delete(build.bento_tag)
    return f"{store.ensure_champion_bento(spec).bento_tag} (rebuilt)"


def migrate(
    env: Environment, instance: dg.DagsterInstance, log: Callable[[str], None] = print
) -> MigrationReport:
    """Migrate every use case of the environment's home (see the module docstring)."""
    report = MigrationReport(converted_specs=convert_outside_specs(env.specs_dirs))
    for path in report.converted_specs:
        log(f"converted {path}")
    for name, spec in use_case_specs(env.specs_dirs).items():
        report.ledger_entries[name] = build_ledger(env, spec)
        report.paused_segments[name] = move_paused_segments(spec, env, instance)
        report.bentos[name] = rebuild_stale_bento(spec, env)
        log(
            f"{name}: {report.ledger_entries[name]} ingestion ledger entries written; "
            f"bento {report.bentos[name]}"
            + (
                f"; paused segments {', '.join(report.paused_segments[name])}"
                if report.paused_segments[name]
                else ""
            )
        )
    return report
