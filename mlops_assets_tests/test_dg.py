"""The use case is a Dagster component: ``dg`` lists, checks and scaffolds it, and a use case
from ``dg scaffold defs`` or from an outside folder runs to a champion.

``dg`` commands that change the defs folder (a broken spec, a scaffolded use case) run in a copy
of the project, with the copy first on ``PYTHONPATH``, so the checkout is never touched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import yaml

from mlops_assets.environment import Environment
from mlops_assets.ingest.days import today
from mlops_assets.ops.launch import load_definitions, refresh
from mlops_assets.registry.status import slot_status
from mlops_assets.specs import use_case_specs

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
USE_CASES = ["bigmart_sales", "loan_approval", "m5_sales", "mushroom", "obesity"]


def run(command: list[str], cwd: Path, env: dict[str, str], timeout: int = 600):
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture
def project_copy(tmp_path: Path, mlops_home: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the project and an environment importing the package from it."""
    copy = tmp_path / "project"
    copy.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, copy / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("mlops_assets", "bento", "instance"):
        shutil.copytree(ROOT / folder, copy / folder, ignore=ignore)
    env = {**os.environ, "PYTHONPATH": str(copy), "VIRTUAL_ENV": str(BIN.parent)}
    return copy, env


def test_dg_list_defs_lists_every_use_case() -> None:
    result = run([str(BIN / "dg"), "list", "defs", "--json"], ROOT, dict(os.environ))
    assert result.returncode == 0, result.stderr[-3000:]
    listed = json.loads(result.stdout)
    groups = {asset["group_name"] for asset in listed["assets"]}
    assert groups == set(USE_CASES)
    checks = {check["key"] for check in listed["asset_checks"]}
    for use_case in USE_CASES:
        assert f"{use_case}/raw_data:schema" in checks
        assert f"{use_case}/clean_data:null_rates" in checks
    jobs = {job["name"] for job in listed["jobs"]}
    sensors = {sensor["name"] for sensor in listed["sensors"]}
    schedules = {schedule["name"] for schedule in listed["schedules"]}
    for use_case in USE_CASES:
        assert {f"{use_case}__ingest", f"{use_case}__retrain"} <= jobs
        assert {f"{use_case}__landing_sensor", f"{use_case}__retrain_sensor"} <= sensors
        assert f"{use_case}__weekly_retrain" in schedules
    sources = {asset["source"].split(":")[0] for asset in listed["assets"]}
    assert sources == {f"mlops_assets/defs/{use_case}/defs.yaml" for use_case in USE_CASES}


def test_dg_check_defs_names_the_file_and_the_field(project_copy) -> None:
    copy, env = project_copy
    dg_check = [str(BIN / "dg"), "check", "defs"]
    assert run(dg_check, copy, env).returncode == 0
    defs_yaml = copy / "mlops_assets" / "defs" / "bigmart_sales" / "defs.yaml"
    text = defs_yaml.read_text()
    defs_yaml.write_text(text.replace("primary_metric: rmse", "primary_metric: accuracy"))
    result = run(dg_check, copy, env)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "mlops_assets/defs/bigmart_sales/defs.yaml" in output
    assert "primary_metric: metric `accuracy` does not apply to a regression task" in output


def landed_file(path: Path, rows: int = 600, seed: int = 1) -> Path:
    """Data with the scaffold's columns: a target that depends on the features."""
    rng = np.random.default_rng(seed)
    amount = rng.uniform(0, 100, rows)
    kind = rng.choice(["a", "b"], rows)
    target = 3 * amount + np.where(kind == "a", 40, 0) + rng.normal(0, 5, rows)
    frame = pd.DataFrame(
        {"id": [f"c{i}" for i in range(rows)], "amount": amount, "kind": kind, "target": target}
    )
    frame.to_csv(path, index=False)
    return path


def test_a_scaffolded_use_case_runs_to_a_champion(project_copy, tmp_path: Path) -> None:
    copy, env = project_copy
    scaffold = [str(BIN / "dg"), "scaffold", "defs", "mlops_assets.components.UseCase", "churn"]
    result = run(scaffold, copy, env)
    assert result.returncode == 0, result.stdout + result.stderr
    defs_yaml = copy / "mlops_assets" / "defs" / "churn" / "defs.yaml"
    skeleton = defs_yaml.read_text()
    assert skeleton.count("#") > 20  # every field explained
    document = yaml.safe_load(skeleton)
    assert document["type"] == "mlops_assets.components.UseCase"
    assert document["attributes"]["name"] == "churn"
    # The user fills it in: their description, a start date, a small budget.
    document["attributes"]["description"] = "Churn amount from customer kind."
    document["attributes"]["partitions"]["start_date"] = "2025-01-01"
    document["attributes"]["tuning"] = {"n_trials": 2}
    defs_yaml.write_text(yaml.safe_dump(document, sort_keys=False))
    assert run([str(BIN / "dg"), "check", "defs"], copy, env).returncode == 0
    mlops = str(BIN / "mlops")
    data = landed_file(tmp_path / "customers.csv")
    landed = run([mlops, "land", "churn", str(data)], copy, env)
    assert landed.returncode == 0, landed.stderr
    refreshed = run([mlops, "refresh", "churn", "--trials", "2"], copy, env)
    assert refreshed.returncode == 0, refreshed.stdout + refreshed.stderr
    status = run([mlops, "status", "churn", "--json"], copy, env)
    assert json.loads(status.stdout)["champion"]["version"] == "1"


def test_a_use_case_from_an_outside_folder_runs_to_a_champion(
    mlops_home: Path, tmp_path: Path, monkeypatch
) -> None:
    outside = tmp_path / "my_use_cases"
    (outside / "churn").mkdir(parents=True)
    bigmart = yaml.safe_load((ROOT / "mlops_assets/defs/bigmart_sales/defs.yaml").read_text())
    document = {
        "type": bigmart["type"],
        "attributes": {
            "name": "churn",
            "task": "regression",
            "target": {"name": "target"},
            "id_columns": [{"name": "id", "type": "categorical", "closed": False}],
            "features": [
                {"name": "amount", "type": "numeric"},
                {"name": "kind", "type": "categorical", "categories": ["a", "b"]},
            ],
            "primary_metric": "rmse",
            "partitions": {"start_date": "2025-01-01"},
            "split": {"method": "hash", "by": ["id"]},
            "models": [{"family": "ridge", "search_space": {}}],
        },
    }
    (outside / "churn" / "defs.yaml").write_text(yaml.safe_dump(document))
    monkeypatch.setenv("MLOPS_SPECS_DIRS", str(outside))
    env = Environment.from_env()
    spec = use_case_specs(env.specs_dirs)["churn"]
    definitions = load_definitions()
    assert definitions.resolve_job_def("churn__retrain")
    data = landed_file(tmp_path / "customers.csv")
    env.landing_zone().land("churn", today().isoformat(), data.name, data.read_bytes())
    outcome = refresh(spec, env, definitions, dg.DagsterInstance.ephemeral(), n_trials=2)
    assert outcome.success, [r.errors for r in outcome.ingested] + [outcome.retrain]
    assert slot_status(spec, env.tracking())["champion"]["version"] == "1"


def test_an_outside_use_case_with_a_bundled_name_is_refused(tmp_path: Path) -> None:
    from mlops_assets.specs import SpecError

    outside = tmp_path / "mine" / "bigmart_sales"
    outside.mkdir(parents=True)
    shutil.copy(ROOT / "mlops_assets/defs/bigmart_sales/defs.yaml", outside / "defs.yaml")
    with pytest.raises(SpecError, match="name `bigmart_sales` is used by"):
        use_case_specs([outside.parent])
