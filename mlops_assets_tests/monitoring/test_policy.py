"""Each condition of the retraining policy, firing and not firing."""

import json

import dagster as dg
import pytest

from mlops_assets.components.features import clean_key, train_key
from mlops_assets.monitoring.assets import drift_key, performance_key
from mlops_assets.monitoring.policy import build_retrain_sensor, policy_evidence
from mlops_assets.resources import resources_for_environment
from mlops_assets.specs import use_case_specs
from mlops_assets.components.use_case import build_use_case

UC = "bigmart_sales"


@pytest.fixture
def spec():
    return use_case_specs()[UC]


def report(instance, key, partition=None, **metadata) -> None:
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key=key, partition=partition, metadata=metadata)
    )


def trained_through(instance, spec, last_day: str) -> None:
    report(instance, train_key(spec), last_day=last_day)


def clean_days(instance, spec, days: list[str]) -> None:
    for day in days:
        report(instance, clean_key(spec), partition=day, rows_out=10)


def kinds(instance, spec) -> list[str]:
    return [e.kind for e in policy_evidence(instance, spec)]


def test_nothing_fires_on_a_quiet_day(spec) -> None:
    instance = dg.DagsterInstance.ephemeral()
    trained_through(instance, spec, "2025-01-10")
    clean_days(instance, spec, ["2025-01-09", "2025-01-10", "2025-01-11"])
    report(instance, performance_key(spec), "2025-01-15", degradation=0.02)
    report(instance, drift_key(spec), "2025-01-15", max_psi=0.05, max_psi_feature="Item_MRP")
    assert kinds(instance, spec) == []


def test_k_new_partitions(spec) -> None:
    instance = dg.DagsterInstance.ephemeral()
    trained_through(instance, spec, "2025-01-10")
    k = spec.retraining.new_partitions
    days = [f"2025-01-{11 + i:02d}" for i in range(k)]
    clean_days(instance, spec, days[:-1])
    assert "new_partitions" not in kinds(instance, spec)
    clean_days(instance, spec, days[-1:])
    evidence = policy_evidence(instance, spec)
    assert [e.kind for e in evidence] == ["new_partitions"]
    assert f"{k} new partitions since 2025-01-10 (K={k})" == evidence[0].reason


def test_first_training_needs_k_days(spec) -> None:
    instance = dg.DagsterInstance.ephemeral()
    clean_days(instance, spec, [f"2025-01-{d:02d}" for d in range(1, 8)])
    assert policy_evidence(instance, spec)[0].reason.endswith("and no model trained yet (K=7)")


@pytest.mark.parametrize(("worse", "fires"), [(0.1, False), (0.25, True)])
def test_metric_degradation(spec, worse: float, fires: bool) -> None:
    instance = dg.DagsterInstance.ephemeral()
    trained_through(instance, spec, "2025-01-10")
    report(instance, performance_key(spec), "2025-01-20", degradation=worse)
    assert ("degradation" in kinds(instance, spec)) is fires


@pytest.mark.parametrize(("change", "fires"), [(0.004, False), (0.05, True)])
def test_degradation_of_a_near_zero_metric_needs_an_absolute_change(change, fires) -> None:
    """mushroom's log loss near 0.01: +40% is 0.004, below its `min_metric_change` of 0.02."""
    mushroom = use_case_specs()["mushroom"]
    assert mushroom.retraining.min_metric_change == 0.02
    instance = dg.DagsterInstance.ephemeral()
    trained_through(instance, mushroom, "2025-01-10")
    report(instance, performance_key(mushroom), "2025-01-20", degradation=0.4, metric_change=change)
    assert ("degradation" in kinds(instance, mushroom)) is fires


@pytest.mark.parametrize(("max_psi", "fires"), [(0.1, False), (0.4, True)])
def test_drift(spec, max_psi: float, fires: bool) -> None:
    instance = dg.DagsterInstance.ephemeral()
    trained_through(instance, spec, "2025-01-10")
    report(instance, drift_key(spec), "2025-01-20", max_psi=max_psi, max_psi_feature="Item_MRP")
    evidence = policy_evidence(instance, spec)
    assert ("drift" in [e.kind for e in evidence]) is fires
    if fires:
        assert "PSI of Item_MRP on 2025-01-20 is 0.400 (Y=0.2)" in evidence[0].reason


def test_no_drift_trigger_during_the_cooldown(spec) -> None:
    instance = dg.DagsterInstance.ephemeral()
    trained_through(instance, spec, "2025-01-10")
    report(instance, drift_key(spec), "2025-01-12", max_psi=0.9, max_psi_feature="Item_MRP")
    report(instance, performance_key(spec), "2025-01-12", degradation=0.9)
    assert kinds(instance, spec) == []  # within cooldown_days of the training window


def tick(spec, instance, cursor=None):
    parts = build_use_case(spec)
    definitions = dg.Definitions(
        assets=parts.assets, jobs=parts.jobs, resources=resources_for_environment()
    )
    sensor = build_retrain_sensor(spec, f"{spec.name}__retrain")
    with dg.build_sensor_context(instance=instance, cursor=cursor, definitions=definitions) as ctx:
        return sensor.evaluate_tick(ctx)


def test_sensor_tags_the_run_and_never_fires_twice_for_the_same_evidence(spec, mlops_home) -> None:
    instance = dg.DagsterInstance.ephemeral()
    trained_through(instance, spec, "2025-01-10")
    report(instance, drift_key(spec), "2025-01-20", max_psi=0.5, max_psi_feature="Item_MRP")
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
    assert tick(spec, instance, first.cursor).run_requests == []
    # New evidence (a later day) fires again.
    report(instance, drift_key(spec), "2025-01-21", max_psi=0.6, max_psi_feature="Item_MRP")
    assert len(tick(spec, instance, first.cursor).run_requests) == 1


def test_paused_segments_are_left_out_of_policy_and_weekly_runs(mlops_home) -> None:
    mushroom = use_case_specs()["mushroom"]
    with dg.instance_for_test() as instance:  # a schedule's context needs a persistent one
        check_paused_segments(mushroom, instance)


def check_paused_segments(mushroom, instance) -> None:
    from mlops_assets.monitoring.toggles import set_segment_retraining
    from mlops_assets.components.use_case import retrain_selection

    trained_through(instance, mushroom, "2025-01-10")
    report(instance, drift_key(mushroom), "2025-01-20", max_psi=0.9, max_psi_feature="habitat")
    set_segment_retraining(mushroom, ["cap_gill"], False, instance)
    result = tick(mushroom, instance)
    [request] = result.run_requests
    assert request.asset_selection == retrain_selection(mushroom, ["stem_season"])
    assert dg.AssetKey(["mushroom", "cap_gill", "tuned_model"]) not in request.asset_selection
    assert request.tags["mlops/segments"] == "stem_season"
    assert request.tags["mlops/paused_segments"] == "cap_gill"
    weekly = weekly_request(mushroom, instance)
    assert weekly.asset_selection == request.asset_selection

    # Every segment paused: nothing runs, and the evidence is not used up.
    set_segment_retraining(mushroom, ["stem_season"], False, instance)
    skipped = tick(mushroom, instance)
    assert skipped.run_requests == [] and "every segment of mushroom is paused" in str(
        skipped.skip_message
    )
    assert skipped.cursor is None
    assert isinstance(weekly_request(mushroom, instance), dg.SkipReason)
    set_segment_retraining(mushroom, ["cap_gill", "stem_season"], True, instance)
    [resumed] = tick(mushroom, instance).run_requests
    assert resumed.asset_selection is None  # the whole retrain job again


def weekly_request(spec, instance):
    """What the weekly schedule asks for: a run request, or the skip reason."""
    from mlops_assets.monitoring.policy import build_weekly_schedule

    schedule = build_weekly_schedule(spec, f"{spec.name}__retrain")
    with dg.build_schedule_context(instance=instance) as context:
        result = schedule.evaluate_tick(context)
    return result.run_requests[0] if result.run_requests else dg.SkipReason(result.skip_message)
