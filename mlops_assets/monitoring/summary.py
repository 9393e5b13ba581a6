"""What monitoring found on a day, per model slot: the typed record the retraining policy reads.

Monitoring writes one summary per monitored day (``<storage>/<use_case>/monitoring/<day>.json``);
the retraining policy reads the latest one. Asset metadata stays what people read in the UI
(rounded, per slot); this is what code reads, so no module parses metadata keys of another.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from mlops_assets import names
from mlops_assets.specs.model import UseCaseSpec
from mlops_assets.storage.objectstore import ObjectStore


@dataclass(frozen=True)
class SlotSummary:
    """One slot's champion on one day: its error against its test score, and the drift."""

    segment: str | None
    champion_version: str | None
    status: str
    metric: str | None = None
    score: float | None = None  # the primary metric on the day's (or week's) labels
    degradation: float | None = None  # relative worsening against the champion's test score
    metric_change: float | None = None  # the same, in the metric's units
    max_psi: float | None = None
    max_psi_feature: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)  # the reported metrics of the day


@dataclass(frozen=True)
class DaySummary:
    """Every slot's findings on one day."""

    day: str
    slots: list[SlotSummary] = field(default_factory=list)
    run_id: str = ""

    def to_json(self) -> bytes:
        """The summary as stored."""
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> DaySummary:
        """A stored summary."""
        value: dict[str, Any] = json.loads(data)
        slots = [SlotSummary(**slot) for slot in value.get("slots", [])]
        return cls(day=value["day"], slots=slots, run_id=value.get("run_id", ""))


def summary_key(spec: UseCaseSpec, day: str) -> str:
    """Object key of a day's summary."""
    return f"{names.monitoring_prefix(spec.name)}{day}.json"


def write_summary(store: ObjectStore, spec: UseCaseSpec, summary: DaySummary) -> None:
    """Store a day's summary (replacing an earlier one of that day)."""
    store.put_bytes(summary_key(spec, summary.day), summary.to_json())


def read_summary(store: ObjectStore, spec: UseCaseSpec, day: str) -> DaySummary | None:
    """The summary of a day, if monitored."""
    key = summary_key(spec, day)
    return DaySummary.from_json(store.get_bytes(key)) if store.exists(key) else None


def read_summaries(store: ObjectStore, spec: UseCaseSpec) -> list[DaySummary]:
    """Every monitored day's summary, oldest first."""
    prefix = names.monitoring_prefix(spec.name)
    keys = sorted(i.key for i in store.list(prefix) if i.key.endswith(".json"))
    return [DaySummary.from_json(store.get_bytes(key)) for key in keys]


def latest_summary(store: ObjectStore, spec: UseCaseSpec) -> DaySummary | None:
    """The summary of the latest monitored day (``None`` before any)."""
    keys = [
        i.key for i in store.list(names.monitoring_prefix(spec.name)) if i.key.endswith(".json")
    ]
    return DaySummary.from_json(store.get_bytes(max(keys))) if keys else None
