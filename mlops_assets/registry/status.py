"""What the registry says about a use case: champion and challenger, with their test metrics."""

from __future__ import annotations

from typing import Any

from mlops_assets.registry.mlflow_resource import CHALLENGER, CHAMPION, MlflowTracking
from mlops_assets.specs.model import UseCaseSpec


def describe_version(version: Any) -> dict[str, Any]:
    """A model version as plain data: number, run, test metrics, promotion tags."""
    tags = dict(version.tags or {})
    return {
        "version": str(version.version),
        "run_id": version.run_id,
        "metrics": {k[len("test_") :]: float(v) for k, v in tags.items() if k.startswith("test_")},
        "tags": {k: v for k, v in tags.items() if not k.startswith("test_")},
        "created_at_ms": version.creation_timestamp,
    }


def use_case_status(spec: UseCaseSpec, mlflow: MlflowTracking) -> dict[str, Any]:
    """Champion and challenger of a use case or segment (``None`` where an alias is unset).

    A segmented use case has no model of its own: its status is each segment's, under
    ``segments``.
    """
    if spec.segments:
        return {
            "use_case": spec.name,
            "primary_metric": spec.primary_metric,
            "tracking_uri": mlflow.uri(),
            "segments": {
                str(view.segment): use_case_status(view, mlflow) for view in spec.segment_specs()
            },
        }
    name = spec.registered_model_name()
    result: dict[str, Any] = {
        "use_case": spec.name,
        "segment": spec.segment,
        "model_name": name,
        "primary_metric": spec.primary_metric,
        "tracking_uri": mlflow.uri(),
    }
    for alias in (CHAMPION, CHALLENGER):
        version = mlflow.alias_version(name, alias)
        result[alias] = describe_version(version) if version is not None else None
    return result


def use_case_table() -> list[str]:
    """One line per use case (per segment): rows stored, champion, primary metric on the test set.

    A segmented use case's segments are listed as ``<use_case>/<segment>``.
    """
    from mlops_assets.specs import load_specs

    lines = [f"{'use case':<26} {'rows':>7} {'champion':>9}  primary metric"]
    for name, spec in load_specs().items():
        rows = stored_rows(name)
        for view in spec.segment_specs():
            label = f"{name}/{view.segment}" if view.segment else name
            champion = use_case_status(view, MlflowTracking())["champion"]
            if champion is None:
                lines.append(f"{label:<26} {rows:>7} {'-':>9}  {spec.primary_metric}: -")
                continue
            score = champion["metrics"].get(spec.primary_metric)
            shown = f"{score:.4g}" if score is not None else "-"
            version = "v" + champion["version"]
            lines.append(f"{label:<26} {rows:>7} {version:>9}  {spec.primary_metric}={shown}")
    return lines


def stored_rows(use_case: str) -> int:
    """Rows of the use case's stored train and test sets (0 before its first training)."""
    import io

    import pyarrow.parquet as pq

    from mlops_assets.orchestration import initialized_resource
    from mlops_assets.resources import resources_for_environment

    with initialized_resource(resources_for_environment(), "lake") as lake:
        store = lake.store()
    total = 0
    for asset in ("train_set", "test_set"):
        key = f"{use_case}/{asset}.parquet"
        if store.exists(key):
            total += pq.ParquetFile(io.BytesIO(store.get_bytes(key))).metadata.num_rows
    return total
