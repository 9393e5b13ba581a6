"""``mlops gc``: the state a use case accumulates, kept for the spec's ``retention`` and no longer.

Every day of serving adds prediction log objects, every retrain a registered version (imported
into BentoML and built into a bento when it serves), an Optuna study and one MLflow run per
trial. Left alone, the store, BentoML's home and both databases grow for as long as the use
case runs. :func:`collect` applies the spec's retention per model slot:

- the prediction log: days before the kept period deleted, each closed day's objects compacted
  into one table per set of columns (readers never see a row twice or miss one);
- BentoML: imported models and bentos of versions that are neither champion, challenger, nor
  among the newest ``recent_versions`` (so a rollback to a recent version needs no rebuild);
- Optuna studies of past data versions, and the MLflow trial runs under them, except the
  studies of kept versions and the newest ``recent_studies``. Tuning runs stay: they hold the
  registered versions' artifacts and their tuning summaries.

Registered MLflow versions are never deleted here (``mlops delete`` does that, one at a time),
and neither is the promotion ledger: each slot's collection is appended to it as a
``retention`` entry saying what went, so the audit trail outlives what it describes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from mlops_assets import names
from mlops_assets.bentos.build import BentoStore
from mlops_assets.environment import Environment
from mlops_assets.prediction_log import compact_log_day, drop_log_days_before, log_days
from mlops_assets.registry.ledger import LedgerEntry, append_entry
from mlops_assets.registry.tracking import Tracking
from mlops_assets.specs.model import UseCaseSpec
from mlops_assets.storage.objectstore import ObjectStore
from mlops_assets.training.tuning import delete_studies, studies_of

RETENTION_ACTION = "retention"


@dataclass
class SlotCollection:
    """What was (or, in a dry run, would be) removed for one model slot."""

    model_name: str
    kept_versions: list[str]
    bentos: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    studies: list[str] = field(default_factory=list)
    trial_runs: int = 0

    def summary(self) -> str:
        """One line for people and for the ledger."""
        parts = [
            f"{len(self.bentos)} bentos",
            f"{len(self.models)} BentoML models",
            f"{len(self.studies)} Optuna studies",
            f"{self.trial_runs} MLflow trial runs",
        ]
        kept = ", ".join(f"v{v}" for v in self.kept_versions) or "none"
        return f"removed {', '.join(parts)}; versions kept: {kept}"


@dataclass
class Collection:
    """What :func:`collect` did for a use case."""

    use_case: str
    dry_run: bool
    log_cutoff: str
    log_dropped: int  # days (stored log) or rows (database log) older than the cutoff
    log_dropped_unit: str
    log_days_compacted: int = 0
    log_objects_merged: int = 0
    slots: list[SlotCollection] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The report ``mlops gc`` prints."""
        verb = "would remove" if self.dry_run else "removed"
        head = (
            f"{self.use_case}: prediction log before {self.log_cutoff}: {verb} "
            f"{self.log_dropped} {self.log_dropped_unit}"
        )
        if not self.dry_run:
            head += (
                f"; {self.log_days_compacted} closed days compacted "
                f"({self.log_objects_merged} objects merged)"
            )
        lines = [head]
        for slot in self.slots:
            text = slot.summary()
            lines.append(f"{slot.model_name}: {text.replace('removed', verb, 1)}")
        return lines


@dataclass(frozen=True)
class SlotVersions:
    """A slot's registered versions (by number) and what its aliases point at, read once."""

    model_name: str
    versions: dict[str, Any]
    champion: str | None
    challenger: str | None

    @classmethod
    def read(cls, view: UseCaseSpec, tracking: Tracking) -> SlotVersions:
        """One listing of the slot's versions and one lookup per alias."""
        name = view.registered_model_name()
        aliased = [tracking.alias_version(name, a) for a in (names.CHAMPION, names.CHALLENGER)]
        champion, challenger = (str(v.version) if v is not None else None for v in aliased)
        return cls(name, tracking.versions(name), champion, challenger)

    def kept(self, recent: int) -> set[str]:
        """The versions to keep: champion, challenger and the ``recent`` newest."""
        newest = sorted(self.versions, key=int)
        kept = set(newest[-recent:]) if recent else set()
        return kept | {v for v in (self.champion, self.challenger) if v is not None}


def unkept_studies(
    slot: SlotVersions, tracking: Tracking, optuna_url: str, kept: set[str], recent: int
) -> list[str]:
    """A slot's Optuna studies to remove: not a kept version's, not among the newest."""
    studies = studies_of(optuna_url, slot.model_name)
    of_kept = {
        tracking.run_tags(getattr(slot.versions[v], "run_id", None)).get(names.STUDY_TAG)
        for v in kept
        if v in slot.versions
    }
    newest = set(studies[-recent:]) if recent else set()
    return [name for name in studies if name not in of_kept | newest]


def collect_log(
    store: ObjectStore,
    spec: UseCaseSpec,
    database_url: str | None,
    today: dt.date,
    dry_run: bool,
) -> Collection:
    """The prediction log's part of a collection: old days dropped, closed days compacted."""
    cutoff = (today - dt.timedelta(days=spec.retention.prediction_log_days - 1)).isoformat()
    unit = "rows" if database_url else "days"
    if dry_run:
        dropped = 0 if database_url else sum(d < cutoff for d in log_days(store, spec.name))
        return Collection(spec.name, True, cutoff, dropped, unit)
    collection = Collection(
        spec.name, False, cutoff, drop_log_days_before(store, spec, cutoff, database_url), unit
    )
    if database_url:
        return collection
    for day in log_days(store, spec.name):
        if day >= today.isoformat():
            continue  # a worker may still write to today's
        done = compact_log_day(store, spec.name, day)
        if done is not None:
            collection.log_days_compacted += 1
            collection.log_objects_merged += done.merged
    return collection


def collect(
    spec: UseCaseSpec,
    env: Environment,
    bentos: BentoStore,
    today: dt.date | None = None,
    dry_run: bool = False,
) -> Collection:
    """Apply a use case's retention (see the module); ``dry_run``: only say what would go.

    A dry run does not count the database log's rows (it reports 0 of them).
    """
    store, tracking = env.lake(), env.tracking()
    today = today or dt.datetime.now(dt.UTC).date()
    collection = collect_log(store, spec, env.prediction_log_database, today, dry_run)
    versions = {view.segment: SlotVersions.read(view, tracking) for view in spec.segment_specs()}
    kept = {
        segment: found.kept(spec.retention.recent_versions) for segment, found in versions.items()
    }
    doomed = bentos.unkept(spec, kept)
    if not dry_run:
        bentos.remove(
            [tag for found, _ in doomed.values() for tag in found],
            [tag for _, found in doomed.values() for tag in found],
        )
    for view in spec.segment_specs():
        slot = SlotCollection(view.registered_model_name(), sorted(kept[view.segment], key=int))
        slot.bentos, slot.models = doomed[view.segment]
        slot.studies = unkept_studies(
            versions[view.segment],
            tracking,
            env.optuna_url,
            kept[view.segment],
            spec.retention.recent_studies,
        )
        trials = tracking.trial_runs_of(spec.name, set(slot.studies))
        slot.trial_runs = len(trials)
        if not dry_run:
            tracking.delete_runs(trials)
            delete_studies(env.optuna_url, slot.studies)
            append_entry(store, view, _entry(view, versions[view.segment], slot))
        collection.slots.append(slot)
    return collection


def _entry(view: UseCaseSpec, versions: SlotVersions, slot: SlotCollection) -> LedgerEntry:
    return LedgerEntry(
        action=RETENTION_ACTION,
        model_name=slot.model_name,
        segment=view.segment,
        champion_version=versions.champion,
        challenger_version=versions.challenger,
        reason=slot.summary()
        + (f" ({', '.join(slot.bentos + slot.models)})" if slot.bentos or slot.models else ""),
        trigger="manual",
    )
