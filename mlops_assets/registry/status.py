"""What the registry says about a model slot: champion and challenger, with their test metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlops_assets import names
from mlops_assets.registry.tracking import Tracking
from mlops_assets.specs.model import UseCaseSpec


def describe_version(version: Any) -> dict[str, Any]:
    """A model version as plain data: number, run, test metrics, promotion tags."""
    tags = dict(version.tags or {})
    prefix = names.TEST_METRIC_PREFIX
    return {
        "version": str(version.version),
        "run_id": version.run_id,
        "metrics": {k[len(prefix) :]: float(v) for k, v in tags.items() if k.startswith(prefix)},
        "tags": {k: v for k, v in tags.items() if not k.startswith(prefix)},
        "created_at_ms": version.creation_timestamp,
    }


def slot_status(slot: UseCaseSpec, tracking: Tracking) -> dict[str, Any]:
    """Champion and challenger of one model slot (``None`` where an alias is unset)."""
    name = slot.registered_model_name()
    result: dict[str, Any] = {
        "use_case": slot.name,
        "segment": slot.segment,
        "model_name": name,
        "primary_metric": slot.primary_metric,
        "tracking_uri": tracking.uri(),
    }
    for alias in (names.CHAMPION, names.CHALLENGER):
        version = tracking.alias_version(name, alias)
        result[alias] = describe_version(version) if version is not None else None
    return result


@dataclass(frozen=True)
class ModelRef:
    """One registered MLflow model version."""

    model_name: str
    version: str
    run_id: str

    @property
    def tag_version(self) -> str:
        """The BentoML version string of this MLflow version (``v3-1a2b3c4d``)."""
        return names.tag_version(self.version, self.run_id)

    @property
    def bento_model_tag(self) -> str:
        """The BentoML model tag this version is imported as."""
        return names.bento_model_tag(self.model_name, self.version, self.run_id)


def champion_ref(slot: UseCaseSpec, tracking: Tracking) -> ModelRef | None:
    """The version a slot's ``champion`` alias points at, or ``None``."""
    name = slot.registered_model_name()
    version = tracking.alias_version(name, names.CHAMPION)
    if version is None:
        return None
    return ModelRef(name, str(version.version), str(version.run_id or "norun"))
