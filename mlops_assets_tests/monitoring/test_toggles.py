"""``mlops pause`` / ``mlops resume`` flip Dagster's own sensor and schedule state."""

import dagster as dg

from mlops_assets.cli import main
from mlops_assets.monitoring.toggles import retraining_state
from mlops_assets.specs import load_specs

UC = "bigmart_sales"


def test_pause_and_resume(mlops_home, capsys) -> None:
    spec = load_specs()[UC]
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
