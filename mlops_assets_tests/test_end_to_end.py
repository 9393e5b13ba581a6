"""The whole BigMart graph on a temporary MLOPS_HOME: landed days to a promoted champion."""

import json

import dagster as dg
import mlflow
import pandas as pd
import pytest

from mlops_assets.cli import main
from mlops_assets.environment import Environment
from mlops_assets.names import CHALLENGER, CHAMPION
from mlops_assets.registry.status import slot_status
from mlops_assets.specs import use_case_specs

UC = "bigmart_sales"


@pytest.fixture(scope="module")
def spec():
    return use_case_specs()[UC]


def test_every_day_is_stored_as_parquet(trained_home) -> None:
    storage = trained_home.home / "storage" / UC
    for asset in ("raw_data", "clean_data"):
        assert sorted(p.stem for p in (storage / asset).glob("*.parquet")) == trained_home.days
    raw = pd.read_parquet(storage / "raw_data" / f"{trained_home.days[0]}.parquet")
    assert {"_source_file", "_row_number", "_landed_date", "_ingested_at"} <= set(raw.columns)
    assert raw["Item_Weight"].dtype == object  # raw keeps values as they arrived
    clean = pd.read_parquet(storage / "clean_data" / f"{trained_home.days[0]}.parquet")
    assert set(clean["Item_Fat_Content"].dropna()) == {"Low Fat", "Regular"}
    assert not (clean["Item_Visibility"] == 0).any()
    assert (storage / "train_set.parquet").exists() and (storage / "test_set.parquet").exists()
    assert not list(storage.rglob("*.pkl")) and not list(storage.rglob("*.pickle"))


def test_runs_are_recorded_in_the_instance(trained_home) -> None:
    runs = trained_home.instance.get_runs()
    assert {r.job_name for r in runs} == {f"{UC}__ingest", f"{UC}__retrain"}
    assert all(r.is_success for r in runs)
    assert len(runs) == len(trained_home.days) + 1


def test_clean_data_metadata(trained_home) -> None:
    event = trained_home.instance.get_latest_materialization_event(dg.AssetKey([UC, "clean_data"]))
    metadata = event.asset_materialization.metadata
    assert metadata["rows_in"].value == metadata["rows_out"].value == 500
    assert metadata["nulls"].value["Item_Weight"] > 0
    assert metadata["remapped_values"].value["Item_Fat_Content"] > 0


def test_champion_beats_the_mean_by_thirty_percent(trained_home, spec) -> None:
    status = slot_status(spec, Environment.from_env().tracking())
    champion = status[CHAMPION]
    assert champion is not None and status[CHALLENGER]["version"] == champion["version"]
    storage = trained_home.home / "storage" / UC
    train = pd.read_parquet(storage / "train_set.parquet")
    test = pd.read_parquet(storage / "test_set.parquet")
    baseline = ((test[spec.target.name] - train[spec.target.name].mean()) ** 2).mean() ** 0.5
    assert champion["metrics"]["rmse"] <= 0.7 * baseline


def test_tuning_is_tracked_in_mlflow(trained_home, spec) -> None:
    event = trained_home.instance.get_latest_materialization_event(dg.AssetKey([UC, "tuned_model"]))
    metadata = event.asset_materialization.metadata
    run = mlflow.MlflowClient(Environment.from_env().tracking_uri).get_run(
        metadata["mlflow_run_id"].value
    )
    assert run.data.tags["dagster.run_id"] == event.run_id
    days = trained_home.days  # the training window's first and last partition
    assert run.data.tags["data_partitions"].split(",") == [days[0], days[-1]]
    children = mlflow.MlflowClient(Environment.from_env().tracking_uri).search_runs(
        [run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'"
    )
    assert (
        len(children)
        == 8
        == (
            metadata["trials_complete"].value
            + metadata["trials_pruned"].value
            + metadata["trials_failed"].value
        )
    )
    assert metadata["model_version"].value == "1"
    assert metadata["model_family"].value in {"catboost", "hist_gradient_boosting", "ridge"}
    mlflow.set_tracking_uri(Environment.from_env().tracking_uri)  # the fluent API is global
    mlflow.set_registry_uri(Environment.from_env().tracking_uri)
    model = mlflow.models.get_model_info(f"models:/{UC}/1")
    assert model.signature is not None
    assert "Item_Identifier" in model.signature.inputs.input_names()


def test_champion_metadata_explains_the_decision(trained_home) -> None:
    event = trained_home.instance.get_latest_materialization_event(
        dg.AssetKey([UC, "champion_model"])
    )
    metadata = event.asset_materialization.metadata
    assert metadata["promoted"].value is True
    assert "first model" in metadata["reason"].value
    assert metadata["champion_version"].value == "1"


def test_numbers_people_read_are_rounded(trained_home, capsys) -> None:
    """Metadata numbers keep 4 significant digits (and stay numbers, for the UI's plots); the
    CLI prints ``rmse=1591.14``, never ``1591.1414027022909``."""
    import re

    for name in ("tuned_model", "champion_model"):
        event = trained_home.instance.get_latest_materialization_event(dg.AssetKey([UC, name]))
        floats = {
            k: v.value
            for k, v in event.asset_materialization.metadata.items()
            if isinstance(v, dg.FloatMetadataValue) and v.value == v.value
        }
        assert floats, name
        for key, value in floats.items():
            assert len(f"{abs(value):e}".split("e")[0].replace(".", "").rstrip("0")) <= 4, key
    assert main(["status", UC]) == 0
    out = capsys.readouterr().out
    assert "rmse=" in out
    assert not re.search(r"=\d+\.\d{5,}", out), out


def test_status_json(trained_home, capsys) -> None:
    assert main(["status", UC, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["champion"]["version"] == "1"
    assert status["champion"]["metrics"]["rmse"] > 0


def test_refresh_with_nothing_new_only_retrains(trained_home, spec) -> None:
    from mlops_assets.ops.launch import refresh

    env = Environment.from_env()
    outcome = refresh(spec, env, trained_home.definitions, trained_home.instance, train=False)
    assert outcome.ingested == [] and outcome.success
