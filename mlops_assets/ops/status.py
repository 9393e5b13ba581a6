"""What ``mlops status`` and ``mlops list`` show: champions, the bento, the automation."""

from __future__ import annotations

import io
from typing import Any

import dagster as dg
import pyarrow.parquet as pq

from mlops_assets import names
from mlops_assets.environment import Environment
from mlops_assets.features.quality import rejected_days
from mlops_assets.metrics import shown
from mlops_assets.monitoring.pauses import paused_segments
from mlops_assets.ops.serve import bento_store
from mlops_assets.ops.toggles import retraining_state
from mlops_assets.registry.ledger import read_ledger
from mlops_assets.registry.status import slot_status
from mlops_assets.specs.catalog import use_case_specs
from mlops_assets.specs.model import UseCaseSpec
from mlops_assets.storage.objectstore import ObjectStore
from mlops_assets.storage.tables import table_key

REJECTED_SHOWN = 10


def retraining_summary(
    spec: UseCaseSpec, env: Environment, instance: dg.DagsterInstance
) -> dict[str, object]:
    """Each retraining instigator's state, and the paused segments of a segmented use case."""
    summary: dict[str, object] = dict(retraining_state(spec, instance))
    if spec.segments:
        summary["paused_segments"] = paused_segments(env.lake(), spec)
    return summary


def last_decision(store: ObjectStore, view: UseCaseSpec) -> dict[str, Any] | None:
    """A slot's latest promotion-gate decision (why there is no champion, say), or ``None``."""
    ledger = read_ledger(store, view)
    gates = ledger[ledger["action"] == "promotion_gate"]
    if gates.empty:
        return None
    row = gates.iloc[-1]
    decision = {
        "at": str(row["at"]),
        "promoted": bool(row["promoted"]),
        "challenger_version": row["challenger_version"],
        "reason": str(row["reason"]),
    }
    if isinstance(row.get("baseline_name"), str):
        decision["baseline"] = {
            "name": row["baseline_name"],
            "score": float(row["baseline_score"]),
            "interval": [float(row["baseline_low"]), float(row["baseline_high"])],
        }
    return decision


def status(
    spec: UseCaseSpec, views: list[UseCaseSpec], env: Environment, instance: dg.DagsterInstance
) -> dict[str, Any]:
    """Every asked slot's champion and challenger, the champions' bento, the automation."""
    tracking = env.tracking()
    store = env.lake()
    slots = [
        {**slot_status(view, tracking), "last_decision": last_decision(store, view)}
        for view in views
    ]
    bento = None
    if all(s["champion"] is not None for s in slots):
        bento = bento_store(env).current_bento_tag(spec)
    rejected = rejected_days(store, spec)
    return {
        "use_case": spec.name,
        "slots": slots,
        "bento": bento,
        "retraining": retraining_summary(spec, env, instance),
        "rejected_days": [
            {"day": r.day, "reason": r.reason, "current_spec": not r.stale(spec)}
            for r in rejected[-REJECTED_SHOWN:]
        ],
        "rejected_day_count": len(rejected),
    }


def stored_rows(store: ObjectStore, use_case: str) -> int:
    """Rows of the use case's stored train and test sets (0 before its first training)."""
    total = 0
    for asset in (names.TRAIN_SET, names.TEST_SET):
        key = table_key(names.asset_path(use_case, asset))
        if store.exists(key):
            total += pq.ParquetFile(io.BytesIO(store.get_bytes(key))).metadata.num_rows
    return total


def use_case_table(env: Environment) -> list[str]:
    """One line per use case (per segment): rows stored, champion, primary metric on the test set.

    A segmented use case's segments are listed as ``<use_case>/<segment>``.
    """
    tracking = env.tracking()
    store = env.lake()
    lines = [f"{'use case':<26} {'rows':>7} {'champion':>9} {'rejected':>9}  primary metric"]
    for name, spec in use_case_specs(env.specs_dirs).items():
        rows = stored_rows(store, name)
        rejected = len(rejected_days(store, spec))
        for view in spec.segment_specs():
            label = f"{name}/{view.segment}" if view.segment else name
            champion = slot_status(view, tracking)["champion"]
            if champion is None:
                lines.append(
                    f"{label:<26} {rows:>7} {'-':>9} {rejected:>9}  {spec.primary_metric}: -"
                )
                continue
            score = champion["metrics"].get(spec.primary_metric)
            version = "v" + champion["version"]
            lines.append(
                f"{label:<26} {rows:>7} {version:>9} {rejected:>9}  "
                f"{spec.primary_metric}={shown(score)}"
            )
    return lines
