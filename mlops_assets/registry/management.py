"""Model management outside the training loop: roll back and delete, each recorded in the ledger.

These move the same registry aliases the promotion gate moves; a running ``mlops serve`` follows
the ``champion`` alias, and bentos are kept per version, so a rollback re-points serving to the
old version's bento without a rebuild.
"""

from __future__ import annotations

from mlops_assets.registry.ledger import LedgerEntry, append_entry, previous_champion, read_ledger
from mlops_assets.registry.mlflow_resource import CHALLENGER, CHAMPION, MlflowTracking
from mlops_assets.specs.model import UseCaseSpec
from mlops_assets.storage.objectstore import ObjectStore


class ManagementError(RuntimeError):
    """A management command cannot do what was asked; the message says why."""


def _existing_versions(mlflow: MlflowTracking, name: str) -> dict[str, object]:
    found = mlflow.client().search_model_versions(f"name = '{name}'")
    return {str(v.version): v for v in found}


def rollback(
    spec: UseCaseSpec,
    mlflow: MlflowTracking,
    store: ObjectStore,
    to_version: str | None = None,
    dagster_run_id: str | None = None,
) -> LedgerEntry:
    """Move ``champion`` back to ``to_version`` (default: the champion the current one replaced)."""
    name = spec.registered_model_name()
    current = mlflow.alias_version(name, CHAMPION)
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
    if target not in _existing_versions(mlflow, name):
        raise ManagementError(f"{name} has no version {target} (deleted or never registered)")
    mlflow.client().set_registered_model_alias(name, CHAMPION, target)
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
    return entry


def delete_version(
    spec: UseCaseSpec, mlflow: MlflowTracking, store: ObjectStore, version: str
) -> LedgerEntry:
    """Delete a version that is not the champion, with its bento; refuses the champion."""
    name = spec.registered_model_name()
    versions = _existing_versions(mlflow, name)
    version = str(version)
    if version not in versions:
        raise ManagementError(f"{name} has no version {version}")
    champion = mlflow.alias_version(name, CHAMPION)
    if champion is not None and str(champion.version) == version:
        raise ManagementError(
            f"{name} v{version} is the champion and cannot be deleted; roll back "
            f"(`mlops rollback {spec.name}{' --segment ' + spec.segment if spec.segment else ''}`)"
            " or promote another version first"
        )
    run_id = str(getattr(versions[version], "run_id", "") or "norun")
    removed = delete_bento_of(spec, name, version, run_id)
    mlflow.client().delete_model_version(name, version)
    challenger = mlflow.alias_version(name, CHALLENGER)
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


def delete_bento_of(spec: UseCaseSpec, name: str, version: str, run_id: str) -> list[str]:
    """Remove the bento and BentoML model built for a version, if any; returns their tags."""
    from mlops_assets.serving.bento import ModelRef, bento_name, bento_tag, bentoml_api, model_tag

    bentoml = bentoml_api()
    from bentoml.exceptions import NotFound

    ref = ModelRef(name, version, run_id)
    removed = []
    if spec.segment:  # the use case's bentos that carry this segment version
        label = f"{spec.segment}_model_tag"
        for bento in bentoml.bentos.list(bento_name(spec)):
            if dict(bento.info.labels).get(label) == model_tag(spec, ref):
                bentoml.bentos.delete(bento.tag)
                removed.append(str(bento.tag))
    for store, tag in (
        (bentoml.bentos, bento_tag(spec, ref)),
        (bentoml.models, model_tag(spec, ref)),
    ):
        try:
            store.delete(tag)
            removed.append(tag)
        except NotFound:
            continue
    return removed
