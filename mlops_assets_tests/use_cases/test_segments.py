"""A segmented use case end to end, in-process: mushroom's two segment models from landing to CLI.

One refresh must give each segment (cap/gill, stem/season) its own registered model, champion,
gate decision in the shared ledger and one bento carrying both champions; a later day's
monitoring scores each segment's champion; the CLI acts per segment and says which segments
exist when a command needs one; ``mlops predict`` picks the segment from a file's columns.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from mlops_assets.cli import main
from mlops_assets.specs import use_case_specs

# The ledger dates decisions now: the monitored day must be today for a champion to be in force.
END = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
SEED = 5
SEGMENTS = ["cap_gill", "stem_season"]


def test_segmented_use_case_end_to_end(mlops_home: Path, tmp_path: Path, capsys) -> None:
    from mlops_assets.environment import Environment
    from mlops_assets.monitoring.summary import read_summary
    from mlops_assets.names import CHAMPION
    from mlops_assets.ops.demo import land_generated_days
    from mlops_assets.ops.launch import load_definitions, refresh
    from mlops_assets.ops.serve import bento_store
    from mlops_assets.registry.ledger import read_ledger

    spec = use_case_specs()["mushroom"]
    env = Environment.from_env()
    land_generated_days(env, "mushroom", days=2, rows=250, seed=SEED, end=END)
    instance = dg.DagsterInstance.ephemeral()
    definitions = load_definitions()
    outcome = refresh(spec, env, definitions, instance, n_trials=2, seed=SEED)
    assert outcome.success, [r.errors for r in outcome.ingested] + [outcome.retrain]

    # One registered model, champion and gate decision per segment.
    mlflow = env.tracking()
    for view in spec.segment_specs():
        name = f"mushroom__{view.segment}"
        assert str(mlflow.alias_version(name, CHAMPION).version) == "1"
        gate = instance.get_latest_materialization_event(
            dg.AssetKey(["mushroom", str(view.segment), "champion_model"])
        )
        assert gate is not None
        metadata = gate.asset_materialization.metadata
        assert metadata["model_name"].value == name
        assert metadata["promoted"].value is True
    assert mlflow.alias_version("mushroom", CHAMPION) is None  # no whole-use-case model

    store = env.lake()
    ledger = read_ledger(store, spec)
    assert sorted(ledger["segment"]) == SEGMENTS
    assert sorted(ledger["model_name"]) == [f"mushroom__{s}" for s in SEGMENTS]
    assert len(read_ledger(store, spec.segment_spec("cap_gill"))) == 1

    # One bento with both champions, reused (the retrain built it).
    bentos = bento_store(env)
    build = bentos.ensure_champion_bento(spec)
    assert not build.built
    assert set(build.models) == set(SEGMENTS)
    bento = bentos.api().bentos.get(build.bento_tag)
    tags = sorted(str(m.tag) for m in bento.info.all_models)
    assert [t.split(":")[0] for t in tags] == [f"mushroom__{s}" for s in SEGMENTS]
    # Build args: the use case and one model tag per slot, in spec order.
    args = dict(bento.info.args)
    assert args["use_case"] == "mushroom"
    assert list(args["model_tags"]) == [build.model_tags[s] for s in SEGMENTS] == tags

    # A later day: monitoring scores each segment's champion out of sample.
    later = land_generated_days(
        env, "mushroom", days=1, rows=250, seed=SEED + 1, end=END + dt.timedelta(1)
    )
    outcome = refresh(spec, env, definitions, instance, train=False)
    assert outcome.success, [r.errors for r in outcome.ingested]
    performance = instance.get_latest_materialization_event(
        dg.AssetKey(["mushroom", "model_performance"])
    )
    assert performance.asset_materialization.partition == later[0]
    values = {k: v.value for k, v in performance.asset_materialization.metadata.items()}
    for segment in SEGMENTS:
        assert values[f"{segment}_champion_version"] == "1"
        assert values[f"{segment}_status"] == "scored out of sample"
        assert 0 < values[f"{segment}_log_loss"] < 5
        assert f"{segment}_degradation" in values
    # No top-level worst-segment keys: the policy reads the day's typed summary instead.
    assert not {"degradation", "degradation_segment", "max_psi"} & set(values)
    drift = instance.get_latest_materialization_event(dg.AssetKey(["mushroom", "data_drift"]))
    drift_values = {k: v.value for k, v in drift.asset_materialization.metadata.items()}
    assert {
        "cap_gill_psi_cap-shape",
        "stem_season_psi_season",
        "cap_gill_prediction_psi",
    } <= set(drift_values)
    from mlops_assets.metrics import significant

    summary = read_summary(store, spec, later[0])
    assert summary is not None and [s.segment for s in summary.slots] == SEGMENTS
    for slot in summary.slots:
        segment = slot.segment
        assert (slot.champion_version, slot.status) == ("1", "scored out of sample")
        assert slot.metric == "log_loss"
        # The summary keeps full precision; the metadata people read is rounded (4 digits).
        assert significant(slot.score) == values[f"{segment}_log_loss"]
        assert significant(slot.degradation) == values[f"{segment}_degradation"]
        assert significant(slot.max_psi) == drift_values[f"{segment}_max_psi"]
        assert slot.max_psi_feature == drift_values[f"{segment}_max_psi_feature"]

    # Retraining one segment leaves the other's model alone.
    outcome = refresh(spec, env, definitions, instance, n_trials=1, seed=SEED, segment="cap_gill")
    assert outcome.success, outcome.retrain
    cap_gill = read_ledger(store, spec.segment_spec("cap_gill"))
    assert list(cap_gill["challenger_version"]) == ["1", "2"]
    assert len(read_ledger(store, spec.segment_spec("stem_season"))) == 1
    stem_versions = mlflow.client().search_model_versions("name = 'mushroom__stem_season'")
    assert len(stem_versions) == 1
    build = bentos.ensure_champion_bento(spec)  # the champions may have changed

    # The CLI, per segment.
    capsys.readouterr()
    assert main(["status", "mushroom"]) == 0
    out = capsys.readouterr().out
    assert "mushroom segment cap_gill (model mushroom__cap_gill" in out
    assert "mushroom segment stem_season (model mushroom__stem_season" in out
    assert f"bento: {build.bento_tag}" in out
    assert main(["status", "mushroom", "--segment", "stem_season"]) == 0
    assert "cap_gill" not in capsys.readouterr().out
    with pytest.raises(SystemExit, match=r"needs --segment \(one of: cap_gill, stem_season\)"):
        main(["rollback", "mushroom"])
    with pytest.raises(SystemExit, match="has no segment 'gills'; segments: cap_gill"):
        main(["delete", "mushroom", "--segment", "gills", "--version", "1"])
    with pytest.raises(SystemExit, match="bigmart_sales has no segments"):
        main(["status", "bigmart_sales", "--segment", "cap_gill"])
    assert main(["rollback", "mushroom", "--segment", "stem_season"]) == 2
    assert "mushroom__stem_season v1 replaced no earlier champion" in capsys.readouterr().err
    assert main(["delete", "mushroom", "--segment", "stem_season", "--version", "1"]) == 2
    assert "is the champion" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="has no segment 'caps'"):
        main(["refresh", "mushroom", "--segment", "caps"])
    assert main(["history", "mushroom", "--segment", "stem_season"]) == 0
    history = capsys.readouterr().out
    assert "stem_season" in history and "cap_gill" not in history
    assert main(["list"]) == 0
    listing = capsys.readouterr().out
    assert "mushroom/cap_gill" in listing and "mushroom/stem_season" in listing

    # mlops predict: the file's columns choose the segment.
    from mlops_assets.generators import get_generator

    rows = get_generator("mushroom").generate(20, END, seed=9)
    stem = spec.segment_spec("stem_season").feature_names
    source = tmp_path / "stems.csv"
    rows[stem].to_csv(source, index=False)
    output = tmp_path / "scored.csv"
    assert main(["predict", "mushroom", str(source), "-o", str(output)]) == 0
    scored = pd.read_csv(output)
    assert len(scored) == 20 and set(scored["model_name"]) == {"mushroom__stem_season"}
    assert (
        main(["predict", "mushroom", str(source), "-o", str(output), "--segment", "cap_gill"]) == 2
    )
    assert "missing columns" in capsys.readouterr().err
    partial = tmp_path / "partial.csv"
    rows[stem[:3]].to_csv(partial, index=False)
    assert main(["predict", "mushroom", str(partial), "-o", str(output)]) == 2
    assert "cap_gill needs cap-diameter" in capsys.readouterr().err
