"""Monitoring of an event-date range: which days are judged, and one status per day otherwise
(before any champion: nothing at all).

Scoring itself is checked end to end against offline scores in
``use_cases/test_forecast_end_to_end.py``; here the range run over days no champion can be
judged on, which must cost no model and still leave every day of a champion's window its status.
"""

from __future__ import annotations

import dagster as dg
import pytest

from mlops_assets import names
from mlops_assets.components.monitoring import drift_key, performance_key
from mlops_assets.environment import Environment
from mlops_assets.monitoring.performance import judged_days, lookback_days, scored_span
from mlops_assets.registry.ledger import LedgerEntry, append_entry, read_ledger, training_window
from mlops_assets.specs import use_case_specs
from mlops_assets.storage.objectstore import LocalObjectStore

DAYS = ["2025-03-01", "2025-03-02", "2025-03-03", "2025-03-04"]


@pytest.fixture
def spec():
    return use_case_specs()["m5_sales"]


def promoted(version: str, train_last_day: str, at: str) -> LedgerEntry:
    return LedgerEntry(
        action="promotion_gate",
        model_name="m5_sales",
        champion_version=version,
        reason="test",
        promoted=True,
        challenger_version=version,
        metric="rmsse",
        challenger_score=0.8,
        challenger_train_first_day="2025-01-01",
        challenger_train_last_day=train_last_day,
        at=at,
    )


def test_a_forecast_scores_a_week_with_its_lags_history(spec) -> None:
    assert scored_span(spec) == 7
    # rolling_mean_28 shifted by 7 reads 35 days back; the week adds 6 more.
    assert lookback_days(spec) == 35 + 6


def test_only_days_after_the_champions_training_days_are_judged(tmp_path, spec) -> None:
    store = LocalObjectStore(tmp_path)
    assert judged_days(None, None, DAYS) == []
    append_entry(store, spec, promoted("1", "2025-03-02", "2025-03-10T00:00:00+00:00"))
    window = training_window(read_ledger(store, spec), "1")
    assert window == ("2025-01-01", "2025-03-02")
    assert judged_days(window, "1", DAYS) == DAYS[2:]
    assert judged_days(None, "1", DAYS) == DAYS  # no recorded window: every day is judged


def run_monitoring(
    spec, mlops_home, tags: dict[str, str], instance: dg.DagsterInstance | None = None
) -> dg.ExecuteInProcessResult:
    from mlops_assets.components.resources import resources_for
    from mlops_assets.components.use_case import build_use_case

    monitoring = next(a for a in build_use_case(spec).assets if performance_key(spec) in a.keys)
    return dg.materialize(
        [monitoring],
        resources=resources_for(Environment.from_env()),
        tags={
            names.RANGE_START_TAG: DAYS[0],
            names.RANGE_END_TAG: DAYS[-1],
            **tags,
        },
        instance=instance or dg.DagsterInstance.ephemeral(),
    )


def day_metadata(result: dg.ExecuteInProcessResult, key: dg.AssetKey) -> dict[str, dict]:
    return {
        event.partition: {k: v.value for k, v in event.materialization.metadata.items()}
        for event in result.get_asset_materialization_events()
        if event.asset_key == key
    }


def test_a_range_before_any_champion_records_nothing(spec, mlops_home) -> None:
    """A history landed before any model: no model is loaded, no day is judged, and no event
    is recorded per day (the run succeeds; its log says why)."""
    instance = dg.DagsterInstance.ephemeral()
    as_of = {"mlops/as_of": "2025-03-11T00:00:00+00:00"}
    result = run_monitoring(spec, mlops_home, as_of, instance)
    assert result.success
    assert result.get_asset_materialization_events() == []
    messages = [r.user_message for r in instance.all_logs(result.run_id)]
    assert any(
        f"no champion yet: {len(DAYS)} days ({DAYS[0]}..{DAYS[-1]}) not judged" in m
        for m in messages
    ), messages


def test_a_range_in_the_champion_s_window_gets_a_status_per_day(spec, mlops_home) -> None:
    """Days the champion trained on are not scored (not out of sample), and each says so."""
    store = Environment.from_env().lake()
    append_entry(store, spec, promoted("1", DAYS[-1], "2025-03-10T00:00:00+00:00"))
    result = run_monitoring(spec, mlops_home, {"mlops/as_of": "2025-03-11T00:00:00+00:00"})
    assert result.success
    for key in (performance_key(spec), drift_key(spec)):
        found = day_metadata(result, key)
        assert sorted(found) == DAYS  # one materialization per day of the range, in one run
        for metadata in found.values():
            assert metadata["status"] == "in the champion's training window"
            assert metadata["monitored_range"] == f"{DAYS[0]}..{DAYS[-1]}"
            assert metadata["judged_days"] == 0
