"""Model management outside the training loop: roll back and delete, each recorded in the ledger.

These move the same registry aliases the promotion gate moves; a running ``mlops serve`` follows
the ``champion`` alias, and bentos are kept per version, so a rollback re-points serving to the
old version's bento without a rebuild.
"""

from __future__ import annotations

from mlops_assets import names
from mlops_assets.bentos.build import BentoStore
from mlops_assets.monitoring.alerts import AlertWebhook
from mlops_assets.monitoring.alerts import rollback as rollback_alert
from mlops_assets.registry.ledger import LedgerEntry, append_entry, previous_champion, read_ledger
from mlops_assets.registry.status import ModelRef
from mlops_assets.registry.tracking import Tracking
from mlops_assets.specs.model import UseCaseSpec
from mlops_assets.storage.objectstore import ObjectStore


class ManagementError(RuntimeError):
    """A management command cannot do what was asked; the message says why."""


def rollback(
    spec: UseCaseSpec,
    tracking: Tracking,
    store: ObjectStore,
    to_version: str | None = None,
    dagster_run_id: str | None = None,
    alerts: AlertWebhook | None = None,
) -> LedgerEntry:
    """Move ``champion`` back to ``to_version`` (default: the champion the current one replaced).

    With ``alerts``, the rollback is posted to the webhook (a failure to deliver is logged).
    """
    name = spec.registered_model_name()
    current = tracking.alias_version(name, names.CHAMPION)
    if current is None:
        raise ManagementError(f"{name} has no champion to roll back")
    current_version = str(current.version)
    target = to_version or previous_champion(read_ledger(store, spec), current_version)
    if target is None:
        raise ManagementError(
            f"{name} v{current_version} replaced no earlier champion; pass --to VERSION"
        )
    target = str(target)
    if target == current_version:
        raise ManagementError(f"{name} v{target} is already the champion")
    if target not in tracking.versions(name):
        raise ManagementError(f"{name} has no version {target} (deleted or never registered)")
    tracking.client().set_registered_model_alias(name, names.CHAMPION, target)
    entry = LedgerEntry(
        action="rollback",
        model_name=name,
        segment=spec.segment,
        champion_version=target,
        reason=f"rolled back from v{current_version} to v{target}",
        incumbent_version=current_version,
        challenger_version=target,
        trigger="manual",
        dagster_run_id=dagster_run_id,
    )
    append_entry(store, spec, entry)
    if alerts is not None:
        alerts.send(rollback_alert(spec, target, current_version, dagster_run_id))
    return entry


def delete_version(
    spec: UseCaseSpec, tracking: Tracking, store: ObjectStore, bentos: BentoStore, version: str
) -> LedgerEntry:
    """Delete a version that is not the champion, with its bento; refuses the champion."""
    name = spec.registered_model_name()
    versions = tracking.versions(name)
    version = str(version)
    if version not in versions:
        raise ManagementError(f"{name} has no version {version}")
    champion = tracking.alias_version(name, names.CHAMPION)
    if champion is not None and str(champion.version) == version:
        raise ManagementError(
            f"{name} v{version} is the champion and cannot be deleted; roll back "
            f"(`mlops rollback {spec.name}{' --segment ' + spec.segment if spec.segment else ''}`)"
            " or promote another version first"
        )
    run_id = str(getattr(versions[version], "run_id", "") or "norun")
    removed = bentos.delete_version(spec, ModelRef(name, version, run_id))
    tracking.client().delete_model_version(name, version)
    challenger = tracking.alias_version(name, names.CHALLENGER)
    entry = LedgerEntry(
        action="delete",
        model_name=name,
        segment=spec.segment,
        champion_version=str(champion.version) if champion is not None else None,
        reason=f"deleted v{version}" + (f" and {', '.join(removed)}" if removed else ""),
        challenger_version=str(challenger.version) if challenger is not None else None,
        trigger="manual",
    )
    append_entry(store, spec, entry)
    return entry
