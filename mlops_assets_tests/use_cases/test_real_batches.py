"""Batches as real files give them: ordered and lumpy, not iid samples.

A real file cut into days in its own order leaves whole days without a column's values, or with
a few categories only: such days pass (with warnings). A contract violation still rejects its
day naming the column; a file that is not the use case's data fails a blocking check saying
what is wrong; and a day rejected under an older spec is judged again once the spec is fixed.
"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml

from mlops_assets.environment import Environment
from mlops_assets.features.quality import read_verdict, rejected_days
from mlops_assets.generators import get_generator
from mlops_assets.ops.launch import ingest, load_definitions
from mlops_assets.specs import use_case_specs

ROOT = Path(__file__).resolve().parent.parent.parent
START = dt.date(2025, 3, 1)


def land_frame(env: Environment, use_case: str, day: str, frame: pd.DataFrame, sep=",") -> None:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, sep=sep)
    env.landing_zone().land(use_case, day, "batch.csv", buffer.getvalue().encode())


def grouped_days(use_case: str, days: int, rows: int) -> list[tuple[str, pd.DataFrame]]:
    generator = get_generator(use_case)
    return [
        (
            (START + dt.timedelta(days=i)).isoformat(),
            generator.generate(rows, START + dt.timedelta(days=i), 5, layout="grouped", stream=i),
        )
        for i in range(days)
    ]


@pytest.mark.parametrize(
    ("use_case", "column"), [("mushroom", "veil-type"), ("bigmart_sales", "Outlet_Size")]
)
def test_days_cut_from_an_ordered_file_are_not_rejected(mlops_home, use_case, column) -> None:
    env = Environment.from_env()
    batches = grouped_days(use_case, 8, 150)
    assert any(frame[column].isna().all() for _, frame in batches)  # whole days without it
    for day, frame in batches:
        land_frame(env, use_case, day, frame, sep=";" if use_case == "mushroom" else ",")
    spec = use_case_specs()[use_case]
    outcome = ingest(spec, env, load_definitions(), dg.DagsterInstance.ephemeral())
    assert outcome.success, [r.errors for r in outcome.ingested]
    assert rejected_days(env.lake(), spec) == []
    warned = [day for day, _ in batches if read_verdict(env.lake(), spec, day)["clean"]["warnings"]]
    assert warned  # the empty columns are reported, as warnings


def test_contract_violations_still_reject_their_day_naming_the_column(mlops_home) -> None:
    env = Environment.from_env()
    spec = use_case_specs()["bigmart_sales"]
    batches = grouped_days("bigmart_sales", 3, 200)
    good, no_ids, missing = batches
    no_ids[1].loc[no_ids[1].index[:100], "Item_Identifier"] = None
    for day, frame in (good, no_ids):
        land_frame(env, spec.name, day, frame)
    land_frame(env, spec.name, missing[0], missing[1].drop(columns=["Outlet_Type"]))
    outcome = ingest(spec, env, load_definitions(), dg.DagsterInstance.ephemeral())
    assert not outcome.success
    rejected = {r.day: r.reason for r in rejected_days(env.lake(), spec)}
    assert set(rejected) == {no_ids[0], missing[0]}
    assert "Item_Identifier" in rejected[no_ids[0]] and "ids" in rejected[no_ids[0]]
    assert "Outlet_Type" in rejected[missing[0]] and "schema" in rejected[missing[0]]
    errors = " ".join(e for run in outcome.ingested for e in run.errors)
    assert "Outlet_Type" in errors


def test_a_file_that_is_not_the_use_cases_data_fails_saying_what_is_wrong(mlops_home) -> None:
    """The M5 calendar landed alone for m5_sales: dated rows, but no series id and no sales."""
    env = Environment.from_env()
    spec = use_case_specs()["m5_sales"]
    dates = pd.date_range("2016-03-01", periods=20, freq="D")
    calendar = pd.DataFrame(
        {
            "date": dates.strftime("%Y-%m-%d"),
            "wm_yr_wk": 11605,
            "weekday": dates.day_name(),
            "d": [f"d_{1860 + i}" for i in range(len(dates))],
            "snap_CA": 0,
        }
    )
    land_frame(env, spec.name, "2016-04-01", calendar)
    outcome = ingest(spec, env, load_definitions(), dg.DagsterInstance.ephemeral())
    assert not outcome.success
    errors = " ".join(e for run in outcome.ingested for e in run.errors)
    assert "schema" in errors
    rejected = rejected_days(env.lake(), spec)
    assert len(rejected) == len(dates)
    assert "'id'" in rejected[0].reason and "sales (the target)" in rejected[0].reason
    assert not (env.home / "storage" / "m5_sales" / "clean_data").exists()


def test_a_rejected_day_is_judged_again_after_the_spec_is_fixed(mlops_home, tmp_path, monkeypatch):
    bigmart = yaml.safe_load((ROOT / "mlops_assets/defs/bigmart_sales/defs.yaml").read_text())
    outside = tmp_path / "mine"
    (outside / "shop").mkdir(parents=True)
    document = {**bigmart, "attributes": {**bigmart["attributes"], "name": "shop"}}
    defs_yaml = outside / "shop" / "defs.yaml"
    defs_yaml.write_text(yaml.safe_dump(document))
    monkeypatch.setenv("MLOPS_SPECS_DIRS", str(outside))
    env = Environment.from_env()
    day, frame = grouped_days("bigmart_sales", 1, 200)[0]
    frame["Outlet_Type"] = "Supermarket Type4"  # a type the spec does not know yet
    land_frame(env, "shop", day, frame)
    instance = dg.DagsterInstance.ephemeral()
    first = ingest(use_case_specs([outside])["shop"], env, load_definitions(), instance)
    assert not first.success
    assert "Outlet_Type" in rejected_days(env.lake(), use_case_specs([outside])["shop"])[0].reason

    for feature in document["attributes"]["features"]:  # the user fixes the spec
        if feature["name"] == "Outlet_Type":
            feature["categories"].append("Supermarket Type4")
    defs_yaml.write_text(yaml.safe_dump(document))
    fixed = use_case_specs([outside])["shop"]
    again = ingest(fixed, env, load_definitions(), instance)
    assert again.success and len(again.ingested) == 1  # judged again, without landing again
    assert rejected_days(env.lake(), fixed) == []
    assert ingest(fixed, env, load_definitions(), instance).ingested == []  # once is enough
