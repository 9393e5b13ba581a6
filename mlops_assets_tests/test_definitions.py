"""The code location loads quickly, without heavy imports, with the expected graph.

``definitions_snapshot.json`` is the whole graph (asset keys, deps, groups, partitions, checks,
jobs, sensors, schedules): a change to the graph changes it on purpose. Regenerate it with
``python -m mlops_assets_tests.test_definitions > mlops_assets_tests/definitions_snapshot.json``
and review the diff.
"""

import json
import subprocess
import sys
from pathlib import Path

import dagster as dg

from mlops_assets.definitions import defs

SNAPSHOT = Path(__file__).with_name("definitions_snapshot.json")


def snapshot(definitions: dg.Definitions) -> dict:
    """The graph as plain data, sorted."""
    graph = definitions.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        partitions = node.partitions_def
        assets[key.to_user_string()] = {
            "deps": sorted(p.to_user_string() for p in node.parent_keys),
            "group": node.group_name,
            "partitions": type(partitions).__name__ if partitions else None,
            "partitions_start": partitions.get_first_partition_key() if partitions else None,
            "checks": sorted(c.name for c in node.check_keys),
        }
    jobs = {}
    for job in sorted(definitions.resolve_all_job_defs(), key=lambda j: j.name):
        if job.name.startswith("__"):
            continue
        keys = job.asset_layer.executable_asset_keys if job.asset_layer else []
        jobs[job.name] = sorted(k.to_user_string() for k in keys)
    sensors = {
        s.name: {"job": s.job_name if s.has_jobs else None, "default": s.default_status.value}
        for s in definitions.sensors or []
    }
    schedules = {
        s.name: {"cron": s.cron_schedule, "job": s.job_name, "default": s.default_status.value}
        for s in definitions.schedules or []
    }
    return {
        "assets": assets,
        "jobs": jobs,
        "sensors": dict(sorted(sensors.items())),
        "schedules": dict(sorted(schedules.items())),
    }


def test_the_graph_is_the_snapshot() -> None:
    """Asset keys, deps, partitions, checks, jobs, sensors and schedules, exactly."""
    assert snapshot(defs()) == json.loads(SNAPSHOT.read_text())


def test_monitoring_judges_the_champions() -> None:
    """The lineage edge champion -> monitoring, for one slot and for every segment."""
    graph = defs().resolve_asset_graph()
    for asset in ("model_performance", "data_drift"):
        assert key("champion_model") in graph.get(key(asset)).parent_keys
        parents = graph.get(dg.AssetKey(["mushroom", asset])).parent_keys
        assert {
            dg.AssetKey(["mushroom", "cap_gill", "champion_model"]),
            dg.AssetKey(["mushroom", "stem_season", "champion_model"]),
        } <= parents


UC = "bigmart_sales"


def key(name: str) -> dg.AssetKey:
    return dg.AssetKey([UC, name])


def test_asset_graph_keys_and_edges() -> None:
    graph = defs().resolve_asset_graph()
    expected_parents = {
        "raw_data": set(),
        "clean_data": {key("raw_data")},
        "train_set": {key("clean_data")},
        "test_set": {key("clean_data")},
        "tuned_model": {key("train_set")},
        "champion_model": {key("tuned_model"), key("test_set"), key("train_set")},
    }
    for name, parents in expected_parents.items():
        assert key(name) in graph.get_all_asset_keys(), name
        assert set(graph.get(key(name)).parent_keys) >= parents, name
    for name in expected_parents:
        assert graph.get(key(name)).group_name == UC


def test_partitions_end_today_and_jobs_exist() -> None:
    from mlops_assets.ingest.days import today

    definitions = defs()
    raw = definitions.resolve_asset_graph().get(key("raw_data"))
    assert raw.partitions_def.get_last_partition_key() == today().isoformat()
    assert definitions.resolve_job_def(f"{UC}__ingest").partitions_def is not None
    assert definitions.resolve_job_def(f"{UC}__retrain")
    assert definitions.resolve_sensor_def(f"{UC}__landing_sensor")


def test_every_asset_has_a_description_and_kinds() -> None:
    graph = defs().resolve_asset_graph()
    for asset_key in graph.get_all_asset_keys():
        node = graph.get(asset_key)
        assert node.description, asset_key
        assert node.kinds, asset_key


def test_loading_the_location_imports_no_heavy_library() -> None:
    code = (
        "import sys; from mlops_assets.definitions import defs; defs(); "
        "heavy = [m for m in ('sklearn', 'mlflow', 'catboost', 'boto3', 'optuna', 'bentoml') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_every_use_case_ingests_a_range_in_one_run() -> None:
    """One partitioning path: ingestion and monitoring take a whole range of days in one run,
    whether the days are event dates (m5_sales) or landing days (bigmart_sales)."""
    definitions = defs()
    graph = definitions.resolve_asset_graph()
    for use_case in ("m5_sales", UC):
        for name in ("raw_data", "clean_data", "model_performance", "data_drift"):
            node = graph.get(dg.AssetKey([use_case, name]))
            assert node.backfill_policy == dg.BackfillPolicy.single_run(), name
    ingest = definitions.resolve_job_def("m5_sales__ingest")
    assert {k.path[-1] for k in ingest.asset_layer.executable_asset_keys} == {
        "raw_data",
        "clean_data",
        "model_performance",
        "data_drift",
    }
    assert definitions.resolve_sensor_def("m5_sales__landing_sensor")


def test_segmented_use_case_has_models_per_segment() -> None:
    """mushroom: a tuned model and a champion per segment; one ledger and one bento over both."""
    definitions = defs()
    graph = definitions.resolve_asset_graph()
    segments = ("cap_gill", "stem_season")
    for segment in segments:
        tuned = dg.AssetKey(["mushroom", segment, "tuned_model"])
        champion = dg.AssetKey(["mushroom", segment, "champion_model"])
        assert set(graph.get(tuned).parent_keys) == {dg.AssetKey(["mushroom", "train_set"])}
        assert set(graph.get(champion).parent_keys) == {
            tuned,
            dg.AssetKey(["mushroom", "test_set"]),
            dg.AssetKey(["mushroom", "train_set"]),  # the baseline the gate compares with
        }
        assert graph.get(champion).group_name == "mushroom"
    champions = {dg.AssetKey(["mushroom", s, "champion_model"]) for s in segments}
    for name in ("promotion_ledger", "champion_bento"):
        assert set(graph.get(dg.AssetKey(["mushroom", name])).parent_keys) == champions
    assert dg.AssetKey(["mushroom", "tuned_model"]) not in graph.get_all_asset_keys()
    retrain = definitions.resolve_job_def("mushroom__retrain")
    assert {"mushroom__cap_gill__tuned_model", "mushroom__stem_season__tuned_model"} <= {
        node.name for node in retrain.graph.node_defs
    }


if __name__ == "__main__":
    json.dump(snapshot(defs()), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
