"""``mlops migrate`` brings a home from before the one-shape change up to date.

The old home is built by hand as the older code left it: landed files, stored ``raw_data``
partitions naming the files they read, the event-date landing index, a segment paused in the
instance's key-value store, and a flat spec file in an outside folder.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import yaml

from mlops_assets.components.partitions import partition_bounds
from mlops_assets.environment import Environment
from mlops_assets.ingest.batches import pending_ranges
from mlops_assets.ingest.ledger import file_digest, ingested_files
from mlops_assets.monitoring.pauses import paused_segments
from mlops_assets.ops.launch import instance as home_instance
from mlops_assets.ops.migrate import migrate
from mlops_assets.specs import use_case_specs
from mlops_assets.storage.tables import write_table

ROOT = Path(__file__).resolve().parent.parent.parent


def old_raw_partition(env: Environment, use_case: str, day: str, files: list[str]) -> None:
    frame = pd.DataFrame({"_source_file": files, "x": ["1"] * len(files)})
    write_table(env.lake(), f"{use_case}/raw_data/{day}.parquet", frame)


def test_an_old_home_is_migrated(mlops_home: Path, tmp_path: Path, monkeypatch) -> None:
    outside = tmp_path / "specs"
    outside.mkdir()
    bigmart = yaml.safe_load((ROOT / "mlops_assets/defs/bigmart_sales/defs.yaml").read_text())
    (outside / "sales_copy.yaml").write_text(
        yaml.safe_dump({**bigmart["attributes"], "name": "sales_copy"})
    )
    monkeypatch.setenv("MLOPS_SPECS_DIRS", str(outside))
    env = Environment.from_env()
    landing, lake = env.landing_zone(), env.lake()
    today = dt.date.today()
    days = [(today - dt.timedelta(days=i)).isoformat() for i in (2, 1)]
    # BigMart: two landed days the old code ingested, and one it never saw.
    for day in days:
        key = landing.land("bigmart_sales", day, "batch.csv", b"Item_Identifier\nFDA15\n")
        old_raw_partition(env, "bigmart_sales", day, [key])
    unseen = landing.land("bigmart_sales", today.isoformat(), "batch.csv", b"Item_Identifier\n")
    # m5: a history file in the old landing index.
    history = landing.land("m5_sales", today.isoformat(), "history.csv", b"id,date\na,2016-04-01\n")
    info = next(i for i in landing.store().list("m5_sales/") if i.key == history)
    lake.put_bytes(f"m5_sales/landing_index/{file_digest(info)}_2016-04-01_2016-04-01", b"")
    # mushroom: a segment paused the old way.
    instance = home_instance(env)
    instance.run_storage.set_cursor_values(
        {"mlops/paused_segments/mushroom": json.dumps(["cap_gill"])}
    )

    report = migrate(env, instance, log=lambda _: None)

    assert (outside / "sales_copy" / "defs.yaml").exists()
    assert (outside / "sales_copy.yaml.bak").exists()
    assert "sales_copy" in use_case_specs(env.specs_dirs)
    bigmart_spec = use_case_specs()["bigmart_sales"]
    assert report.ledger_entries["bigmart_sales"] == 2
    pending = pending_ranges(landing, lake, bigmart_spec, partition_bounds(bigmart_spec))
    assert [(b.first, list(b.files)) for b in pending.ranges] == [(today.isoformat(), [unseen])]
    m5 = use_case_specs()["m5_sales"]
    entry = next(iter(ingested_files(lake, m5).values()))
    assert entry.span == ("2016-04-01", "2016-04-01")
    assert pending_ranges(landing, lake, m5, partition_bounds(m5)).ranges == []
    assert paused_segments(lake, use_case_specs()["mushroom"]) == ["cap_gill"]
    assert report.bentos["bigmart_sales"] == "no champion"
    again = migrate(env, instance, log=lambda _: None)
    assert set(again.ledger_entries.values()) == {0}
