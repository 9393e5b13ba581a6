"""Segments whose automatic retraining is paused (``mlops pause <uc> --segment S``).

The retrain sensor and the weekly schedule keep running and retrain the other segments only.
The list lives in the asset storage (``<use_case>/automation/paused_segments.json``), so the
daemon's ticks, the CLI and every machine of a deployment read the same state.
"""

from __future__ import annotations

import json

from mlops_assets import names
from mlops_assets.specs.model import UseCaseSpec
from mlops_assets.storage.objectstore import ObjectStore


def paused_key(spec: UseCaseSpec) -> str:
    """Object key of a use case's paused segments."""
    return f"{names.automation_prefix(spec.name)}paused_segments.json"


def paused_segments(store: ObjectStore, spec: UseCaseSpec) -> list[str]:
    """The segments whose automatic retraining is paused, in spec order."""
    key = paused_key(spec)
    stored = set(json.loads(store.get_bytes(key))) if store.exists(key) else set()
    return [name for name in spec.segment_names if name in stored]


def set_paused(store: ObjectStore, spec: UseCaseSpec, segments: list[str], paused: bool) -> None:
    """Pause or resume the automatic retraining of ``segments``."""
    current = set(paused_segments(store, spec))
    current = current | set(segments) if paused else current - set(segments)
    ordered = [name for name in spec.segment_names if name in current]
    store.put_bytes(paused_key(spec), json.dumps(ordered).encode())
