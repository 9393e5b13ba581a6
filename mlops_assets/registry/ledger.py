"""The promotion ledger: one append-only entry per decision about the champion.

Entries are written where the decision is made (the promotion gate, a rollback, a delete) as
one Parquet object each under ``<use_case>/ledger/``, so no entry is ever rewritten and writers
never race on a shared file. The ``promotion_ledger`` asset publishes the whole table; monitoring
reads it to know which version was champion on a given day.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from dataclasses import asdict, dataclass, field

import pandas as pd

from mlops_assets import names
from mlops_assets.specs.model import UseCaseSpec
from mlops_assets.storage.objectstore import ObjectStore
from mlops_assets.storage.tables import read_table, write_table


@dataclass
class LedgerEntry:
    """One decision about a use case's champion."""

    action: str  # "promotion_gate", "rollback" or "delete"
    model_name: str
    champion_version: str | None  # the champion after the decision
    reason: str
    promoted: bool = False
    challenger_version: str | None = None
    incumbent_version: str | None = None
    metric: str | None = None
    challenger_score: float | None = None
    incumbent_score: float | None = None
    margin: float | None = None
    improvement: float | None = None
    challenger_train_first_day: str | None = None
    challenger_train_last_day: str | None = None
    trigger: str = "manual"
    dagster_run_id: str | None = None
    at: str = field(default_factory=lambda: now_iso())
    segment: str | None = None  # the segment whose model the decision is about, if any
    baseline_name: str | None = None  # the trivial baseline every challenger must beat
    baseline_score: float | None = None
    baseline_improvement: float | None = None  # the challenger's, relative
    baseline_low: float | None = None  # bounds of the bootstrap interval of that improvement
    baseline_high: float | None = None


def now_iso() -> str:
    """The current time as the ledger writes it."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def as_of(tags: dict[str, str]) -> str:
    """When a decision takes effect: the run's ``mlops/as_of`` tag, or now.

    The tag (ISO 8601 with offset) dates a simulated or backfilled day's decisions on that day.
    """
    return tags.get(names.AS_OF_TAG) or now_iso()


def ledger_prefix(spec: UseCaseSpec) -> str:
    """Where a use case's entries are stored."""
    return names.ledger_prefix(spec.name)


def append_entry(store: ObjectStore, spec: UseCaseSpec, entry: LedgerEntry) -> str:
    """Write one entry as its own object; returns its key."""
    stamp = entry.at.replace(":", "").replace("-", "").replace("+0000", "Z")
    key = f"{ledger_prefix(spec)}{stamp}-{time.time_ns()}-{uuid.uuid4().hex[:6]}.parquet"
    write_table(store, key, pd.DataFrame([asdict(entry)]))
    return key


def read_ledger(store: ObjectStore, spec: UseCaseSpec) -> pd.DataFrame:
    """Every entry, oldest first (an empty frame with the columns if there is none).

    A segment's view (:meth:`UseCaseSpec.segment_spec`) reads its own model's entries only, so
    champion history, rollback targets and training windows are per segment.
    """
    keys = [info.key for info in store.list(ledger_prefix(spec)) if info.key.endswith(".parquet")]
    if not keys:
        return pd.DataFrame(columns=list(LedgerEntry.__dataclass_fields__))
    rows = [row for key in sorted(keys) for row in read_table(store, key).to_dict("records")]
    frame = pd.DataFrame(rows, columns=list(LedgerEntry.__dataclass_fields__))
    if spec.segment:
        frame = frame[frame["model_name"] == spec.registered_model_name()]
    return frame.sort_values("at", kind="stable").reset_index(drop=True)


def champion_history(ledger: pd.DataFrame) -> list[tuple[str, str | None]]:
    """``(since, version)`` pairs: which version became champion when."""
    history: list[tuple[str, str | None]] = []
    for row in ledger.itertuples():
        version = row.champion_version if isinstance(row.champion_version, str) else None
        if not history or history[-1][1] != version:
            history.append((row.at, version))
    return history


def champion_on(ledger: pd.DataFrame, day: str) -> str | None:
    """The version that was champion at the end of ``day`` (UTC), per the ledger."""
    end = f"{day}T23:59:59.999999+00:00"
    current = None
    for since, version in champion_history(ledger):
        if since <= end:
            current = version
    return current


def training_window(ledger: pd.DataFrame, version: str) -> tuple[str, str] | None:
    """First and last day of the data a version was trained on, as the gate recorded them."""
    rows = ledger[
        (ledger["action"] == "promotion_gate")
        & (ledger["challenger_version"].astype(str) == str(version))
        & ledger["challenger_train_last_day"].notna()
    ]
    if rows.empty:
        return None
    row = rows.iloc[-1]
    return str(row["challenger_train_first_day"]), str(row["challenger_train_last_day"])


def previous_champion(ledger: pd.DataFrame, current: str | None) -> str | None:
    """The champion that ``current`` replaced when it was promoted (a rollback's default).

    Repeated rollbacks keep stepping back (v3 -> v2 -> v1) instead of toggling between two.
    """
    promotions = ledger[(ledger["action"] == "promotion_gate") & ledger["promoted"].astype(bool)]
    replaced = promotions[promotions["champion_version"] == current]["incumbent_version"]
    replaced = replaced.dropna()
    return str(replaced.iloc[-1]) if len(replaced) else None
