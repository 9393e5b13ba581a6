"""The ``champion_bento`` asset in the graph, and what the session's refresh materialized."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import dagster as dg

from mlops_assets import names
from mlops_assets.components.serving import bento_key
from mlops_assets.ops.launch import load_definitions
from mlops_assets.specs import UseCaseSpec


def test_bento_follows_the_champion_in_the_retrain_job(spec: UseCaseSpec) -> None:
    definitions = load_definitions()
    graph = definitions.resolve_asset_graph()
    key = bento_key(spec)
    node = graph.get(key)
    assert dg.AssetKey([spec.name, "champion_model"]) in node.parent_keys
    assert node.group_name == spec.name and node.kinds == {"bentoml"}
    job = definitions.resolve_job_def(names.retrain_job(spec.name))
    assert key in job.asset_layer.external_job_asset_keys | set(job.asset_layer.selected_asset_keys)


def test_definitions_import_without_bentoml_or_mlflow() -> None:
    code = (
        "import sys, mlops_assets.definitions as d; d.defs(); "
        "heavy = [m for m in ('bentoml', 'mlflow') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_refresh_materialized_the_bento_with_lineage(trained_home: Any, spec: UseCaseSpec) -> None:
    event = trained_home.instance.get_latest_materialization_event(bento_key(spec))
    assert event is not None
    metadata = {k: v.value for k, v in event.asset_materialization.metadata.items()}
    assert metadata["bento_tag"].startswith(f"{spec.name}_service:v{metadata['model_version']}-")
    assert metadata["mlflow_run_id"].startswith(metadata["bento_tag"].rsplit("-", 1)[1])
    assert metadata["built"] is True and metadata["bento_bytes"] > 0
    assert metadata["model_bytes"] > 0 and metadata["build_seconds"] > 0
