"""Each condition of the retraining policy, firing and not firing.

The policy is pure (:func:`policy_evidence` on :class:`PolicyFacts`), so each condition is
checked on facts given directly. The sensor and the weekly schedule read the same facts from
where the platform keeps them: the last ``train_set`` materialization (its ``last_day``), the
stored ``clean_data`` partitions and the monitoring summaries in the asset storage; the tick
tests set those up and check what the sensor asks for.
"""

import json
from collections.abc import Sequence

import dagster as dg
import pandas as pd
import pytest

from mlops_assets import names
from mlops_assets.components.automation import (
    build_retrain_sensor,
    build_weekly_schedule,
    policy_facts,
    retrain_selection,
)
from mlops_assets.components.features import clean_key, train_key
from mlops_assets.components.resources import resources_for
from mlops_assets.environment import Environment
from mlops_assets.monitoring.pauses import set_paused
from mlops_assets.monitoring.policy import (
    PolicyFacts,
    breaches,
    policy_evidence,
    policy_explanation,
)
from mlops_assets.monitoring.summary import DaySummary, SlotSummary, write_summary
from mlops_assets.specs import use_case_specs
from mlops_assets.storage.tables import table_key, write_table

UC = "bigmart_sales"


@pytest.fixture
def spec():
    return use_case_specs()[UC]


# ---------------------------------------------------------------- the pure policy


def slot(segment: str | None = None, **findings) -> SlotSummary:
    """One slot's champion on a day, scored out of sample, with ``findings``."""
    return SlotSummary(
        segment=segment, champion_version="1", status="scored out of sample", **findings
    )


def facts(
    trained: str | None = None, clean: Sequence[str] = (), day: str | None = None, *slots
) -> PolicyFacts:
    """Trained through ``trained``, ``clean`` days stored, the latest summary of ``day``."""
    return PolicyFacts(
        last_training_day=trained,
        trained_by="run-1" if trained else "never",
        clean_days=list(clean),
        latest=DaySummary(day, list(slots)) if day else None,
    )


def kinds(spec, found: PolicyFacts) -> list[str]:
    return [e.kind for e in policy_evidence(spec, found)]


def test_nothing_fires_on_a_quiet_day(spec) -> None:
    quiet = slot(metric="rmse", degradation=0.02, max_psi=0.05, max_psi_feature="Item_MRP")
    clean = ["2025-01-09", "2025-01-10", "2025-01-11"]
    assert kinds(spec, facts("2025-01-10", clean, "2025-01-15", quiet)) == []


def test_a_quiet_day_says_why_nothing_fired(spec) -> None:
    """One phrase per condition: the count against K, degradation against X, drift against Y."""
    quiet = slot(metric="rmse", degradation=0.031, max_psi=0.052, max_psi_feature="Item_MRP")
    clean = ["2025-01-11", "2025-01-12"]
    said = policy_explanation(spec, facts("2025-01-10", clean, "2025-01-15", quiet))
    assert said == [
        "2 of 7 new days since 2025-01-10",
        "degradation 3.1% <= 20% (rmse on 2025-01-15)",
        "drift 0.052 <= 0.2 (Item_MRP on 2025-01-15)",
    ]
    assert breaches(spec, DaySummary("2025-01-15", [quiet])) == []


def test_the_explanation_names_the_cooldown_and_what_already_fired(spec) -> None:
    drifted = slot(metric="rmse", degradation=0.5, max_psi=0.9, max_psi_feature="Item_MRP")
    cooling = facts("2025-01-10", [], "2025-01-12", drifted)
    assert policy_explanation(spec, cooling)[1] == (
        "cooldown until 2025-01-13 (3 days after the training window ending 2025-01-10; "
        "latest monitored day 2025-01-12)"
    )
    assert policy_explanation(spec, facts(None, ["2025-01-01"])) == [
        "1 of 7 new days (no model trained yet)",
        "no monitored day yet (degradation and drift are judged once a champion is)",
    ]
    later = facts("2025-01-10", [], "2025-01-20", drifted)
    tokens = [e.token for e in policy_evidence(spec, later)]
    said = policy_explanation(spec, later, fired=tokens)
    assert said[1].endswith(
        "worse than the champion's test score (X=20%): already requested a retrain"
    )
    assert said[2] == "PSI of Item_MRP on 2025-01-20 is 0.900 (Y=0.2): already requested a retrain"
    assert len(breaches(spec, later.latest)) == 2


def test_k_new_partitions(spec) -> None:
    k = spec.retraining.new_partitions
    days = [f"2025-01-{11 + i:02d}" for i in range(k)]
    assert "new_partitions" not in kinds(spec, facts("2025-01-10", ["2025-01-10", *days[:-1]]))
    evidence = policy_evidence(spec, facts("2025-01-10", ["2025-01-10", *days]))
    assert [e.kind for e in evidence] == ["new_partitions"]
    assert f"{k} new partitions since 2025-01-10 (K={k})" == evidence[0].reason


def test_first_training_needs_k_days(spec) -> None:
    clean = [f"2025-01-{d:02d}" for d in range(1, 8)]
    evidence = policy_evidence(spec, facts(None, clean))
    assert evidence[0].reason.endswith("and no model trained yet (K=7)")


@pytest.mark.parametrize(("worse", "fires"), [(0.1, False), (0.25, True)])
def test_metric_degradation(spec, worse: float, fires: bool) -> None:
    found = facts("2025-01-10", [], "2025-01-20", slot(metric="rmse", degradation=worse))
    assert ("degradation" in kinds(spec, found)) is fires


@pytest.mark.parametrize(("change", "fires"), [(0.004, False), (0.05, True)])
def test_degradation_of_a_near_zero_metric_needs_an_absolute_change(change, fires) -> None:
    """mushroom's log loss near 0.01: +40% is 0.004, below its `min_metric_change` of 0.02."""
    mushroom = use_case_specs()["mushroom"]
    assert mushroom.retraining.min_metric_change == 0.02
    worse = slot("cap_gill", metric="log_loss", degradation=0.4, metric_change=change)
    found = facts("2025-01-10", [], "2025-01-20", worse, slot("stem_season", metric="log_loss"))
    assert ("degradation" in kinds(mushroom, found)) is fires


@pytest.mark.parametrize(("max_psi", "fires"), [(0.1, False), (0.4, True)])
def test_drift(spec, max_psi: float, fires: bool) -> None:
    drifted = slot(max_psi=max_psi, max_psi_feature="Item_MRP")
    evidence = policy_evidence(spec, facts("2025-01-10", [], "2025-01-20", drifted))
    assert ("drift" in [e.kind for e in evidence]) is fires
    if fires:
        assert "PSI of Item_MRP on 2025-01-20 is 0.400 (Y=0.2)" in evidence[0].reason


def test_no_drift_trigger_during_the_cooldown(spec) -> None:
    both = slot(metric="rmse", degradation=0.9, max_psi=0.9, max_psi_feature="Item_MRP")
    # within cooldown_days of the training window
    assert kinds(spec, facts("2025-01-10", [], "2025-01-12", both)) == []


# ---------------------------------------------------------------- the facts, where they live


def trained_through(instance: dg.DagsterInstance, spec, last_day: str) -> None:
    """A training run's ``train_set`` materialization, ending its window on ``last_day``."""
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key=train_key(spec), metadata={names.LAST_DAY: last_day})
    )


def store_clean_days(spec, days: list[str]) -> None:
    """``clean_data`` partitions in the asset storage (``<uc>/clean_data/<day>.parquet``)."""
    store = Environment.from_env().lake()
    for day in days:
        write_table(store, table_key(clean_key(spec).path, day), pd.DataFrame({"x": [1]}))


def monitored(spec, day: str, *slots: SlotSummary) -> None:
    """What monitoring found on ``day``, stored as its summary."""
    write_summary(Environment.from_env().lake(), spec, DaySummary(day, list(slots)))


def test_policy_facts_come_from_storage_and_the_last_training(spec, mlops_home) -> None:
    instance = dg.DagsterInstance.ephemeral()
    lake = resources_for(Environment.from_env())["lake"]
    assert policy_facts(instance, spec, lake) == PolicyFacts(None, "never", [], None)
    trained_through(instance, spec, "2025-01-10")
    store_clean_days(spec, ["2025-01-11", "2025-01-09"])
    drifted = slot(max_psi=0.5, max_psi_feature="Item_MRP")
    monitored(spec, "2025-01-12", slot(metric="rmse", degradation=0.01))
    monitored(spec, "2025-01-20", drifted)
    found = policy_facts(instance, spec, lake)
    assert found.last_training_day == "2025-01-10" and found.trained_by != "never"
    assert found.clean_days == ["2025-01-09", "2025-01-11"]
    assert found.latest == DaySummary("2025-01-20", [drifted])


def tick(spec, instance, cursor=None):
    sensor = build_retrain_sensor(spec, names.retrain_job(spec.name))
    resources = resources_for(Environment.from_env())
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as ctx:
        return sensor.evaluate_tick(ctx)


def test_sensor_tags_the_run_and_never_fires_twice_for_the_same_evidence(spec, mlops_home) -> None:
    instance = dg.DagsterInstance.ephemeral()
    trained_through(instance, spec, "2025-01-10")
    monitored(spec, "2025-01-20", slot(max_psi=0.5, max_psi_feature="Item_MRP"))
    first = tick(spec, instance)
    assert len(first.run_requests) == 1
    tags = first.run_requests[0].tags
    assert tags["mlops/trigger"] == "policy: drift"
    assert "PSI of Item_MRP" in tags["mlops/trigger_reason"]
    assert (tags["mlops/policy_K"], tags["mlops/policy_X"], tags["mlops/policy_Y"]) == (
        "7",
        "0.2",
        "0.2",
    )
    assert json.loads(first.cursor)
    again = tick(spec, instance, first.cursor)
    assert again.run_requests == []
    assert again.skip_message == (
        "0 of 7 new days since 2025-01-10; degradation not scored on 2025-01-20 (scored out of "
        "sample); PSI of Item_MRP on 2025-01-20 is 0.500 (Y=0.2): already requested a retrain"
    )
    # New evidence (a later day) fires again.
    monitored(spec, "2025-01-21", slot(max_psi=0.6, max_psi_feature="Item_MRP"))
    assert len(tick(spec, instance, first.cursor).run_requests) == 1


def _sensor_run(instance, spec, run_id: str, run_key: str, **tags: str) -> None:
    """A run the retrain sensor launched, which failed."""
    instance.add_run(
        dg.DagsterRun(
            job_name=names.retrain_job(spec.name),
            run_id=run_id,
            status=dg.DagsterRunStatus.FAILURE,
            tags={
                "dagster/sensor_name": names.retrain_sensor(spec.name),
                "dagster/run_key": run_key,
                **tags,
            },
        )
    )


def test_evidence_of_a_run_that_died_fires_once_more(spec, mlops_home) -> None:
    """The run the sensor launched was killed: its evidence was fired, so K new partitions
    never retrained again (only new drift or degradation days, or the weekly schedule)."""
    instance = dg.DagsterInstance.ephemeral()
    trained_through(instance, spec, "2025-01-10")
    monitored(spec, "2025-01-20", slot(max_psi=0.5, max_psi_feature="Item_MRP"))
    fired = tick(spec, instance)
    [first], cursor = fired.run_requests, fired.cursor
    _sensor_run(instance, spec, "failed-1", str(first.run_key))  # an ordinary failure
    assert tick(spec, instance, cursor).run_requests == []  # is not retried
    _sensor_run(instance, spec, "dead-1", str(first.run_key), **{names.REAPED_TAG: "gone"})
    again = tick(spec, instance, cursor)
    [retry] = again.run_requests
    assert retry.tags[names.RETRY_OF_TAG] == "dead-1"
    assert retry.run_key == f"{first.run_key}:retry-of:dead-1"
    _sensor_run(
        instance,
        spec,
        "dead-2",
        str(retry.run_key),
        **{names.REAPED_TAG: "gone", names.RETRY_OF_TAG: "dead-1"},
    )
    assert tick(spec, instance, again.cursor).run_requests == []  # a retry is not retried


def test_sensor_counts_the_stored_clean_days(spec, mlops_home) -> None:
    """K new partitions: the clean days stored after the last training window fire a run."""
    instance = dg.DagsterInstance.ephemeral()
    trained_through(instance, spec, "2025-01-10")
    k = spec.retraining.new_partitions
    days = [f"2025-01-{11 + i:02d}" for i in range(k)]
    store_clean_days(spec, ["2025-01-10", *days[:-1]])
    assert tick(spec, instance).run_requests == []
    store_clean_days(spec, days[-1:])
    [request] = tick(spec, instance).run_requests
    assert request.tags["mlops/trigger"] == "policy: new_partitions"
    assert f"{k} new partitions since 2025-01-10" in request.tags["mlops/trigger_reason"]


def test_paused_segments_are_left_out_of_policy_and_weekly_runs(mlops_home) -> None:
    mushroom = use_case_specs()["mushroom"]
    with dg.instance_for_test() as instance:  # a schedule's context needs a persistent one
        check_paused_segments(mushroom, instance)


def check_paused_segments(mushroom, instance) -> None:
    lake = Environment.from_env().lake()
    trained_through(instance, mushroom, "2025-01-10")
    monitored(
        mushroom,
        "2025-01-20",
        slot("cap_gill", max_psi=0.1, max_psi_feature="cap-shape"),
        slot("stem_season", max_psi=0.9, max_psi_feature="habitat"),
    )
    set_paused(lake, mushroom, ["cap_gill"], True)
    result = tick(mushroom, instance)
    [request] = result.run_requests
    assert request.asset_selection == retrain_selection(mushroom, ["stem_season"])
    assert dg.AssetKey(["mushroom", "cap_gill", "tuned_model"]) not in request.asset_selection
    assert request.tags["mlops/segments"] == "stem_season"
    assert request.tags["mlops/paused_segments"] == "cap_gill"
    weekly = weekly_request(mushroom, instance)
    assert weekly.asset_selection == request.asset_selection

    # Every segment paused: nothing runs, and the evidence is not used up.
    set_paused(lake, mushroom, ["stem_season"], True)
    skipped = tick(mushroom, instance)
    assert skipped.run_requests == [] and "every segment of mushroom is paused" in str(
        skipped.skip_message
    )
    assert skipped.cursor is None
    assert isinstance(weekly_request(mushroom, instance), dg.SkipReason)
    set_paused(lake, mushroom, ["cap_gill", "stem_season"], False)
    [resumed] = tick(mushroom, instance).run_requests
    assert resumed.asset_selection is None  # the whole retrain job again


def weekly_request(spec, instance):
    """What the weekly schedule asks for: a run request, or the skip reason."""
    schedule = build_weekly_schedule(spec, names.retrain_job(spec.name))
    resources = resources_for(Environment.from_env())
    with dg.build_schedule_context(instance=instance, resources=resources) as context:
        result = schedule.evaluate_tick(context)
    return result.run_requests[0] if result.run_requests else dg.SkipReason(result.skip_message)
