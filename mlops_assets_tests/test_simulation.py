"""The 30-day story, shortened: daily batches, drift, retraining by policy, monitoring over days.

A use case with a small K (3 new days) and a one-day cool-down makes the same events happen in a
week: the first training on day 3, out-of-sample monitoring after it, and a drift-triggered
retrain once the drifted days are past the cool-down.
"""

import dagster as dg
import pytest
import yaml

from mlops_assets import names
from mlops_assets.specs.catalog import BUNDLED_DIR

UC = "bigmart_short"


@pytest.fixture
def short_spec(tmp_path, mlops_home, monkeypatch):
    document = yaml.safe_load((BUNDLED_DIR / "bigmart_sales" / names.DEFS_FILE).read_text())
    data = document["attributes"]
    data["name"] = UC
    data["retraining"].update(new_partitions=3, cooldown_days=1)
    data["tuning"].update(n_trials=3, cv_folds=2)
    (tmp_path / "specs" / UC).mkdir(parents=True)
    (tmp_path / "specs" / UC / names.DEFS_FILE).write_text(yaml.safe_dump(document))
    monkeypatch.setenv("MLOPS_SPECS_DIRS", str(tmp_path / "specs"))
    return data


def test_a_week_of_batches_with_drift(short_spec, mlops_home, monkeypatch) -> None:
    from mlops_assets.components.monitoring import drift_key, performance_key
    from mlops_assets.environment import Environment
    from mlops_assets.ops.demo import simulate_days
    from mlops_assets.ops.launch import instance
    from mlops_assets.registry.ledger import read_ledger
    from mlops_assets.specs import use_case_specs
    from mlops_assets.storage.objectstore import LocalObjectStore
    from mlops_assets_tests.harness.webhook import Receiver

    webhook = Receiver()  # promotions and drift are alerted
    monkeypatch.setenv("MLOPS_ALERT_WEBHOOK", webhook.url)
    env = Environment.from_env()
    lines: list[str] = []
    story = simulate_days(
        env, use_case=UC, days=7, rows=250, drift_from=5, n_trials=3, seed=5, log=lines.append
    )
    assert story.failures == []
    assert len(story.rows) == len(lines) == 7
    by_day = {number: row for number, row in enumerate(story.rows, start=1)}
    assert [n for n, r in by_day.items() if r.retrained] == [3, 5, 7]
    assert by_day[3].retrained == "new_partitions" and by_day[3].promoted == "v1"
    # Drift from day 5 (past the one-day cool-down after day 3) triggers, and again on day 7.
    assert "drift" in by_day[5].retrained and "drift" in by_day[7].retrained
    assert by_day[6].retrained == ""  # day 6 is inside the cool-down after day 5
    # Before the first champion nothing is scored; after it, days are scored out of sample.
    assert by_day[1].rmse is None and by_day[3].rmse is None
    assert by_day[4].rmse is not None and by_day[4].rmse > 0
    # Drifted days (5 and later) show in the PSI.
    assert by_day[5].max_psi > spec_threshold(short_spec) > by_day[4].max_psi

    dagster_instance = instance(env)
    spec = use_case_specs(env.specs_dirs)[UC]
    partitions = dagster_instance.get_materialized_partitions(performance_key(spec))
    # Days 1-3 were monitored before the first champion (day 3's retrain promoted it after
    # that day's monitoring): nothing is recorded for them.
    assert partitions == {row.day for row in story.rows[3:]}
    assert dagster_instance.get_materialized_partitions(drift_key(spec)) == partitions
    runs = dagster_instance.get_runs(dg.RunsFilter(job_name=f"{UC}__retrain"))
    triggers = {r.tags["mlops/trigger"] for r in runs}
    assert "policy: new_partitions" in triggers
    assert all("drift" in t for t in triggers - {"policy: new_partitions"})
    ledger = read_ledger(LocalObjectStore(mlops_home / "storage"), spec)
    assert len(ledger) == 3 and ledger.iloc[0]["at"].startswith(story.rows[2].day)
    report = mlops_home / "storage" / UC / "reports" / "data_drift" / f"{story.rows[5].day}.html"
    assert "Item_MRP" in report.read_text()

    # The monitoring view: a chart from the first landed day, inline in the last day's metadata.
    from mlops_assets.monitoring.chart import chart_data, first_landed_day
    from mlops_assets.monitoring.summary import read_summaries

    last = story.rows[-1].day
    [record] = dagster_instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=performance_key(spec), asset_partitions=[last]), limit=1
    ).records
    view = record.asset_materialization.metadata["monitoring_view"]
    assert isinstance(view, dg.MarkdownMetadataValue)
    assert view.value.startswith(f"![{UC} monitoring](data:image/png;base64,iVBOR")
    assert (mlops_home / "storage" / UC / "reports" / "monitoring.png").read_bytes()[:4] == (
        b"\x89PNG"
    )
    store = LocalObjectStore(mlops_home / "storage")
    data = chart_data(spec, read_summaries(store, spec), ledger, first_landed_day(store, spec))
    assert data.days == [row.day for row in story.rows]  # not from the spec's start_date
    [slot] = data.slots
    assert [e.day for e in data.events if e.kind == "promotion"] == [
        r.day for r in story.rows if r.promoted.startswith("v")
    ]
    assert slot.champion[:3] == [None, None, "1"]  # promoted at the end of day 3
    assert slot.score[3] == pytest.approx(story.rows[3].rmse)
    assert slot.secondary[3] > 0 and slot.baseline[3] > slot.test_score[3] > 0

    webhook.close()
    promoted = [r.promoted for r in story.rows if r.promoted.startswith("v")]
    alerted = [a["details"]["version"] for a in webhook.received if a["kind"] == "promotion"]
    assert [f"v{v}" for v in alerted] == promoted
    drifted = [a for a in webhook.received if a["kind"] in {"drift", "degradation"}]
    assert {a["details"]["day"] for a in drifted} >= {r.day for r in story.rows[4:]}
    assert any("PSI of" in a["text"] and "(Y=0.2)" in a["text"] for a in drifted)


def spec_threshold(data: dict) -> float:
    return data["retraining"]["max_psi"]
