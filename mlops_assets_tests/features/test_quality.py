"""Blocking data-quality checks, and training that reads only the days that passed them."""

import datetime as dt
import io

import dagster as dg
import pandas as pd
import pytest

from mlops_assets.features.cleaning import clean_frame
from mlops_assets.features.quality import (
    clean_checks,
    null_rate_warning,
    raw_checks,
    read_verdict,
    usable_days,
    write_verdict,
)
from mlops_assets.generators import get_generator
from mlops_assets.specs import use_case_specs
from mlops_assets.storage.objectstore import LocalObjectStore

UC = "bigmart_sales"


@pytest.fixture(scope="module")
def spec():
    return use_case_specs()[UC]


@pytest.fixture(scope="module")
def batch() -> pd.DataFrame:
    return get_generator(UC).generate(200, dt.date(2025, 5, 1), 2)


def by_name(outcomes) -> dict:
    return {o.name: o for o in outcomes}


def test_good_batch_passes_everything(spec, batch) -> None:
    assert all(o.passed for o in raw_checks(batch, spec))
    clean, report = clean_frame(batch, spec)
    assert all(o.passed for o in clean_checks(clean, report, spec))


def test_schema_and_row_count(spec, batch) -> None:
    outcomes = by_name(raw_checks(batch.drop(columns=["Outlet_Type"]).head(3), spec))
    assert not outcomes["schema"].passed
    assert outcomes["schema"].metadata["missing_columns"] == ["Outlet_Type"]
    assert not outcomes["row_count"].passed
    assert outcomes["row_count"].metadata == {"rows": 3, "threshold": spec.min_rows_per_batch}


@pytest.mark.parametrize(
    ("column", "value", "failing_check"),
    [
        ("Item_MRP", "not a price", "types"),
        ("Outlet_Type", "Spaceport", "value_domains"),
        ("Item_Visibility", "7.5", "value_domains"),
    ],
)
def test_clean_checks_catch_bad_values(spec, batch, column, value, failing_check) -> None:
    broken = batch.copy()
    broken[column] = value
    clean, report = clean_frame(broken, spec)
    outcomes = by_name(clean_checks(clean, report, spec))
    assert not outcomes[failing_check].passed
    assert column in outcomes[failing_check].metadata["failing"]
    assert "threshold" in outcomes[failing_check].metadata


def test_a_required_column_with_missing_values_is_rejected(spec, batch) -> None:
    broken = batch.copy()
    broken.loc[broken.index[:3], "Item_MRP"] = None  # `nullable: false`
    clean, report = clean_frame(broken, spec)
    outcomes = by_name(clean_checks(clean, report, spec))
    assert not outcomes["required"].passed
    assert outcomes["required"].metadata["missing"] == {"Item_MRP": 3}
    assert "Item_MRP" in outcomes["required"].summary


def test_a_nullable_column_empty_for_a_whole_day_is_a_warning_only(spec, batch) -> None:
    """A real file cut into days leaves whole days without some column's values."""
    broken = batch.copy()
    broken["Item_Type"] = None
    clean, report = clean_frame(broken, spec)
    assert all(o.passed for o in clean_checks(clean, report, spec))
    warning = null_rate_warning(clean, spec)
    assert not warning.passed and warning.severity == "warn"
    assert warning.metadata["high"] == {"Item_Type": 1.0}


def test_rows_without_a_required_id_and_a_batch_without_labels_are_rejected(spec, batch) -> None:
    broken = batch.copy()
    broken.loc[broken.index[:50], "Item_Identifier"] = None
    broken["Item_Outlet_Sales"] = None
    clean, report = clean_frame(broken, spec)
    outcomes = by_name(clean_checks(clean, report, spec))
    assert not outcomes["ids"].passed
    assert outcomes["ids"].metadata["rows_without_id"] == {"Item_Identifier": 50}
    assert not outcomes["labels"].passed
    assert "Item_Outlet_Sales" in outcomes["labels"].summary


def test_the_target_and_required_columns_must_be_there_optional_ones_need_not(spec, batch):
    outcomes = by_name(raw_checks(batch.drop(columns=["Item_Outlet_Sales"]), spec))
    assert not outcomes["schema"].passed
    assert "Item_Outlet_Sales (the target)" in outcomes["schema"].summary
    optional = spec.model_copy(
        update={
            "features": [
                c.model_copy(update={"optional": True}) if c.name == "Item_Weight" else c
                for c in spec.features
            ]
        }
    )
    assert by_name(raw_checks(batch.drop(columns=["Item_Weight"]), optional))["schema"].passed
    assert not by_name(raw_checks(batch.drop(columns=["Item_Weight"]), spec))["schema"].passed


def test_a_column_of_its_own_threshold(spec, batch) -> None:
    broken = batch.copy()
    broken.loc[broken.index[:10], "Item_MRP"] = "n/a"  # 5% unreadable: above the spec's 1%
    clean, report = clean_frame(broken, spec)
    assert not by_name(clean_checks(clean, report, spec))["types"].passed
    lenient = spec.model_copy(
        update={
            "features": [
                c.model_copy(update={"max_invalid_fraction": 0.1}) if c.name == "Item_MRP" else c
                for c in spec.features
            ]
        }
    )
    assert by_name(clean_checks(clean, report, lenient))["types"].passed


@pytest.mark.parametrize("value", [1e19, -1e19, 2**63])
def test_out_of_int64_integers_in_a_landed_csv_fail_the_types_check(spec, batch, value) -> None:
    """Such values used to crash ``clean_frame`` (``cannot safely cast ... to int64``)."""
    from mlops_assets.ingest.readers import read_landed_file

    broken = batch.astype({"Outlet_Establishment_Year": object})
    broken.loc[broken.index[::2], "Outlet_Establishment_Year"] = value
    raw = read_landed_file("batch.csv", broken.to_csv(index=False).encode())
    clean, report = clean_frame(raw, spec)
    assert report.invalid_values == {"Outlet_Establishment_Year": len(broken.index[::2])}
    outcomes = by_name(clean_checks(clean, report, spec))
    assert not outcomes["types"].passed
    assert outcomes["types"].metadata["failing"] == {"Outlet_Establishment_Year": 0.5}
    assert "Outlet_Establishment_Year" in outcomes["types"].summary


def test_verdicts_decide_usable_days(tmp_path, spec, batch) -> None:
    store = LocalObjectStore(tmp_path)
    good = raw_checks(batch, spec)
    bad = raw_checks(batch.head(2), spec)
    write_verdict(store, spec, "2025-01-01", "raw", good, "r1")
    write_verdict(store, spec, "2025-01-01", "clean", good, "r1")
    write_verdict(store, spec, "2025-01-02", "raw", bad, "r2")
    write_verdict(store, spec, "2025-01-03", "raw", good, "r3")  # clean step never finished
    usable, excluded = usable_days(store, spec, ["2025-01-01", "2025-01-02", "2025-01-03", "x"])
    assert usable == ["2025-01-01"]
    assert excluded["2025-01-02"].startswith("raw: row_count (2 rows")
    assert excluded["2025-01-03"] == "no clean quality verdict"
    assert excluded["x"] == "no raw or clean quality verdict"
    # Re-reading a day (new raw verdict) clears its old clean verdict.
    write_verdict(store, spec, "2025-01-01", "raw", good, "r4")
    assert "clean" not in read_verdict(store, spec, "2025-01-01")


def land(day: str, frame: pd.DataFrame, name: str = "batch.csv") -> None:
    from mlops_assets.environment import Environment

    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    Environment.from_env().landing_zone().land(UC, day, name, buffer.getvalue().encode())


def test_broken_batches_are_kept_out_of_training(mlops_home, spec) -> None:
    from mlops_assets.environment import Environment
    from mlops_assets.names import CHAMPION
    from mlops_assets.ops.demo import land_generated_days
    from mlops_assets.ops.launch import load_definitions, refresh

    env = Environment.from_env()
    days = land_generated_days(env, UC, days=3, rows=300, seed=4, end=dt.date(2025, 6, 3))
    instance = dg.DagsterInstance.ephemeral()
    definitions = load_definitions()
    first = refresh(spec, env, definitions, instance, n_trials=3, seed=4)
    assert first.success
    champion_before = env.tracking().alias_version(UC, CHAMPION)

    generator = get_generator(UC)
    wrong_domain = generator.generate(300, dt.date(2025, 6, 4), 4)
    wrong_domain["Outlet_Type"] = "Spaceport"
    wrong_domain["Item_Outlet_Sales"] = 1e6  # rows that would wreck a model if trained on
    land("2025-06-04", wrong_domain)
    land("2025-06-05", generator.generate(300, dt.date(2025, 6, 5), 4).drop(columns="Item_MRP"))
    second = refresh(spec, env, definitions, instance, n_trials=3, seed=4)

    ingest = {run.partition: run for run in second.ingested}
    assert not ingest["2025-06-04"].success and not ingest["2025-06-05"].success
    assert any("value_domains" in e for e in ingest["2025-06-04"].errors)
    assert second.retrain is not None and second.retrain.success
    # The bad days stay stored and inspectable, with the failure recorded.
    storage = mlops_home / "storage" / UC
    assert (storage / "clean_data" / "2025-06-04.parquet").exists()  # clean check failed after
    assert (storage / "raw_data" / "2025-06-05.parquet").exists()  # raw check failed: no clean
    assert not (storage / "clean_data" / "2025-06-05.parquet").exists()
    checks = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(dg.AssetKey([UC, "clean_data"]), "value_domains")]
    )
    assert checks
    # Training read only the good days.
    train = pd.read_parquet(storage / "train_set.parquet")
    assert sorted(train["_landed_date"].unique()) <= days
    assert "Spaceport" not in set(train["Outlet_Type"])
    event = instance.get_latest_materialization_event(dg.AssetKey([UC, "train_set"]))
    excluded = event.asset_materialization.metadata["excluded_days"].value
    assert list(excluded) == ["2025-06-04"]  # 06-05 has no clean partition to exclude
    assert "value_domains" in excluded["2025-06-04"]
    verdict = read_verdict(LocalObjectStore(mlops_home / "storage"), spec, "2025-06-05")
    assert verdict["raw"]["failed"]["schema"] == "missing columns ['Item_MRP']"
    champion_after = env.tracking().alias_version(UC, CHAMPION)
    assert champion_after.version == champion_before.version
