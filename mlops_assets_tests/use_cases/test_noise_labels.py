"""Labels unrelated to the features never yield a champion, whatever the seed or the split.

The ML-deploy project's loan file has such labels (its own notebook scores 0.47 accuracy). Here
the loan generator's rows get their labels shuffled: every challenger must beat the class prior
on the test rows by the margin and beyond noise, and none does; ``mlops status`` and
``mlops history`` say it lost to the baseline.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import dagster as dg
import numpy as np
import yaml

from mlops_assets.cli import main
from mlops_assets.environment import Environment
from mlops_assets.generators import get_generator
from mlops_assets.names import CHAMPION
from mlops_assets.ops.launch import execute, ingest, load_definitions, retrain_run_config
from mlops_assets.registry.ledger import read_ledger
from mlops_assets.specs import use_case_specs

ROOT = Path(__file__).resolve().parent.parent.parent
SALTS = ["", "other side"]
SEEDS = [1, 2]


def noise_use_case(folder: Path, name: str, salt: str) -> None:
    loan = yaml.safe_load((ROOT / "mlops_assets/defs/loan_approval/defs.yaml").read_text())
    attributes = {**loan["attributes"], "name": name, "generator": None}
    attributes["split"] = {**attributes["split"], "salt": salt}
    (folder / name).mkdir(parents=True)
    (folder / name / "defs.yaml").write_text(
        yaml.safe_dump({"type": loan["type"], "attributes": attributes})
    )


def land_noise(env: Environment, name: str, days: int = 2, rows: int = 300) -> None:
    generator = get_generator("loan_approval")
    rng = np.random.default_rng(0)
    for i in range(days):
        day = dt.date(2025, 5, 1) + dt.timedelta(days=i)
        frame = generator.generate(rows, day, 3, stream=i)
        frame["loan_status"] = rng.permutation(frame["loan_status"].to_numpy())
        buffer = io.StringIO()
        frame.to_csv(buffer, index=False)
        env.landing_zone().land(name, day.isoformat(), "loans.csv", buffer.getvalue().encode())


def test_noise_labels_never_make_a_champion(mlops_home, tmp_path, monkeypatch, capsys) -> None:
    folder = tmp_path / "noise"
    names = [f"noise_{i}" for i in range(len(SALTS))]
    for name, salt in zip(names, SALTS, strict=True):
        noise_use_case(folder, name, salt)
    monkeypatch.setenv("MLOPS_SPECS_DIRS", str(folder))
    env = Environment.from_env()
    definitions, instance = load_definitions(), dg.DagsterInstance.ephemeral()
    tracking = env.tracking()
    for name in names:
        spec = use_case_specs(env.specs_dirs)[name]
        land_noise(env, name)
        assert ingest(spec, env, definitions, instance).success
        for seed in SEEDS:
            run = execute(
                definitions,
                f"{name}__retrain",
                instance,
                run_config=retrain_run_config(spec, 2, seed),
            )
            assert run.success, run.errors
        assert tracking.alias_version(name, CHAMPION) is None
        gates = read_ledger(env.lake(), spec)
        assert len(gates) == len(SEEDS) and not gates["promoted"].any()
        assert all("does not beat the class prior" in reason for reason in gates["reason"])
        assert (gates["baseline_low"] <= 0).all()

    assert main(["status", names[0], "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["champion"] is None
    assert "does not beat the class prior" in status["last_decision"]["reason"]
    assert status["last_decision"]["baseline"]["name"] == "class prior"
    assert main(["status", names[0]]) == 0
    assert "does not beat the class prior" in capsys.readouterr().out
    assert main(["history", names[0]]) == 0
    assert "does not beat the class prior" in capsys.readouterr().out
