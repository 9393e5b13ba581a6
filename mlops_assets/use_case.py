"""``build_use_case(spec)``: the whole generated graph of one use case.

Every asset key is prefixed by the use case and every use case is one asset group, so the
lineage view of a group is the whole life of one model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dagster as dg

from mlops_assets import settings
from mlops_assets.features.assets import build_clean_data, build_splits
from mlops_assets.features.forecast import model_spec
from mlops_assets.ingest.assets import build_raw_data
from mlops_assets.ingest.event_dates import build_event_date_sensor, by_event_date
from mlops_assets.ingest.sensors import build_landing_sensor
from mlops_assets.ingest.simulate import build_simulation
from mlops_assets.monitoring.assets import build_monitoring
from mlops_assets.monitoring.policy import build_retrain_sensor, build_weekly_schedule
from mlops_assets.partitions import daily_partitions
from mlops_assets.registry.assets import build_champion_model, build_promotion_ledger
from mlops_assets.serving.assets import build_champion_bento
from mlops_assets.specs.model import UseCaseSpec
from mlops_assets.training.assets import build_tuned_model


def retrain_selection(spec: UseCaseSpec, segments: list[str]) -> list[dg.AssetKey]:
    """The retrain job's assets for some segments: splits, their models and gates, ledger, bento.

    The others keep their champions; the ledger and the bento cover every segment anyway.
    """
    from mlops_assets.features.assets import test_key, train_key
    from mlops_assets.registry.assets import champion_key, ledger_key
    from mlops_assets.serving.assets import bento_key
    from mlops_assets.training.assets import tuned_key

    views = [spec.segment_spec(segment) for segment in segments]
    return [
        train_key(spec),
        test_key(spec),
        *(tuned_key(view) for view in views),
        *(champion_key(view) for view in views),
        ledger_key(spec),
        bento_key(spec),
    ]


def ingest_job_name(spec: UseCaseSpec) -> str:
    """Daily job: a day's raw and clean data, its checks and its monitoring."""
    return f"{spec.name}__ingest"


def retrain_job_name(spec: UseCaseSpec) -> str:
    """Retraining job: splits, tuning, the promotion gate, the ledger and the bento."""
    return f"{spec.name}__retrain"


@dataclass
class UseCaseDefs:
    """What one spec contributes to the code location."""

    assets: list[dg.AssetsDefinition]
    jobs: list[dg.UnresolvedAssetJobDefinition | dg.JobDefinition]
    sensors: list[dg.SensorDefinition]
    schedules: list[dg.ScheduleDefinition] = field(default_factory=list)
    asset_checks: list[dg.AssetChecksDefinition] = field(default_factory=list)


def build_use_case(spec: UseCaseSpec) -> UseCaseDefs:
    """Assets, jobs and sensors of one use case, generated from its spec.

    A segmented use case gets a ``tuned_model`` and a ``champion_model`` per segment
    (``<uc>/<segment>/tuned_model``), all fed by the same splits; the ledger and the one bento
    depend on every segment's champion.
    """
    raw = build_raw_data(spec)
    clean = build_clean_data(spec)
    modelled = model_spec(spec)  # a forecast's derived lag features are model features too
    splits = build_splits(modelled)
    views = modelled.segment_specs()
    tuned = [build_tuned_model(view) for view in views]
    champions = [build_champion_model(view) for view in views]
    ledger = build_promotion_ledger(spec)
    bento = build_champion_bento(modelled)
    monitoring = build_monitoring(spec)
    ingest_job = dg.define_asset_job(
        ingest_job_name(spec),
        selection=dg.AssetSelection.assets(raw, clean, monitoring),
        partitions_def=daily_partitions(spec),
        executor_def=dg.in_process_executor,
        description=f"{spec.name}: ingest, check, clean and monitor one landing day.",
    )
    retrain_job = dg.define_asset_job(
        retrain_job_name(spec),
        selection=dg.AssetSelection.assets(splits, *tuned, *champions, ledger, bento),
        executor_def=settings.retrain_executor(),
        description=f"{spec.name}: rebuild the splits, tune a challenger and apply the gate.",
    )
    jobs: list = [ingest_job, retrain_job]
    schedules = [build_weekly_schedule(spec, retrain_job.name)]
    if spec.generator:
        simulate_job, simulate_schedule = build_simulation(spec)
        jobs.append(simulate_job)
        schedules.append(simulate_schedule)
    return UseCaseDefs(
        assets=[raw, clean, splits, *tuned, *champions, ledger, bento, monitoring],
        jobs=jobs,
        sensors=[
            build_event_date_sensor(spec, ingest_job.name)
            if by_event_date(spec)
            else build_landing_sensor(spec, ingest_job.name),
            build_retrain_sensor(spec, retrain_job.name),
        ],
        schedules=schedules,
    )
