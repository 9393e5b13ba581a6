"""``mlops pause`` / ``mlops resume`` flip Dagster's own sensor and schedule state.

They go through Dagster's public CLI (``dagster sensor stop ...``), so the use-case tests take a
few seconds each; a segment's pause is kept in the asset storage.
"""

import dagster as dg
import pytest

from mlops_assets.cli import main
from mlops_assets.environment import Environment
from mlops_assets.monitoring.pauses import paused_segments
from mlops_assets.ops import launch
from mlops_assets.ops.toggles import retraining_state
from mlops_assets.specs import use_case_specs

UC = "bigmart_sales"


def test_pause_and_resume(mlops_home, capsys) -> None:
    spec = use_case_specs()[UC]
    assert main(["pause", UC]) == 0
    assert "stopped" in capsys.readouterr().out
    instance = dg.DagsterInstance.get()
    assert retraining_state(spec, instance) == {
        f"{UC}__retrain_sensor": "stopped",
        f"{UC}__weekly_retrain": "stopped",
    }
    # The landing sensor is not retraining: pausing leaves ingestion alone.
    assert all(s.name != f"{UC}__landing_sensor" for s in instance.all_instigator_state())
    assert main(["resume", UC]) == 0
    assert set(retraining_state(spec, instance).values()) == {"running"}


def test_pause_and_resume_one_segment(mlops_home, capsys) -> None:
    """A segment's pause is the lake's, and the use case's automation keeps running."""
    import json

    spec = use_case_specs()["mushroom"]
    env = Environment.from_env()
    lake = env.lake()
    assert main(["pause", "mushroom", "--segment", "cap_gill"]) == 0
    assert "mushroom segment cap_gill: paused" in capsys.readouterr().out
    instance = launch.instance(env)  # a segment's pause left the instance untouched
    assert paused_segments(lake, spec) == ["cap_gill"]
    assert set(retraining_state(spec, instance).values()) == {"running"}
    assert main(["status", "mushroom", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["retraining"]["paused_segments"] == ["cap_gill"]
    assert main(["pause", "mushroom", "--segment", "stem_season"]) == 0
    assert paused_segments(lake, spec) == ["cap_gill", "stem_season"]
    assert main(["resume", "mushroom", "--segment", "cap_gill"]) == 0
    assert paused_segments(lake, spec) == ["stem_season"]
    # Resuming the use case resumes every segment too.
    assert main(["resume", "mushroom"]) == 0
    assert paused_segments(lake, spec) == []
    assert set(retraining_state(spec, instance).values()) == {"running"}


def test_segment_pause_needs_a_segment_of_the_use_case(mlops_home) -> None:
    with pytest.raises(SystemExit, match="no segment 'gills'; segments: cap_gill, stem_season"):
        main(["pause", "mushroom", "--segment", "gills"])
    with pytest.raises(SystemExit, match="bigmart_sales has no segments"):
        main(["resume", UC, "--segment", "cap_gill"])
