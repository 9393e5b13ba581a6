"""``build_use_case(spec)``: the whole generated graph of one use case.

Every asset key is prefixed by the use case and every use case is one asset group, so the
lineage view of a group is the whole life of one model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dagster as dg

from mlops_assets.features.assets import build_clean_data, build_splits
from mlops_assets.ingest.assets import build_raw_data
from mlops_assets.ingest.sensors import build_landing_sensor
from mlops_assets.partitions import daily_partitions
from mlops_assets.registry.assets import build_champion_model
from mlops_assets.specs.model import UseCaseSpec
from mlops_assets.training.assets import build_tuned_model


def ingest_job_name(spec: UseCaseSpec) -> str:
    """Daily job: a day's raw and clean data."""
    return f"{spec.name}__ingest"


def retrain_job_name(spec: UseCaseSpec) -> str:
    """Retraining job: splits, tuning and the promotion gate."""
    return f"{spec.name}__retrain"


@dataclass
class UseCaseDefs:
    """What one spec contributes to the code location."""

    assets: list[dg.AssetsDefinition]
    jobs: list[dg.UnresolvedAssetJobDefinition]
    sensors: list[dg.SensorDefinition]
    schedules: list[dg.ScheduleDefinition] = field(default_factory=list)
    asset_checks: list[dg.AssetChecksDefinition] = field(default_factory=list)


def build_use_case(spec: UseCaseSpec) -> UseCaseDefs:
    """Assets, jobs and sensors of one use case, generated from its spec."""
    raw = build_raw_data(spec)
    clean = build_clean_data(spec)
    splits = build_splits(spec)
    tuned = build_tuned_model(spec)
    champion = build_champion_model(spec)
    ingest_job = dg.define_asset_job(
        ingest_job_name(spec),
        selection=dg.AssetSelection.assets(raw, clean),
        partitions_def=daily_partitions(spec),
        executor_def=dg.in_process_executor,
        description=f"{spec.name}: ingest and clean one landing day.",
    )
    retrain_job = dg.define_asset_job(
        retrain_job_name(spec),
        selection=dg.AssetSelection.assets(splits, tuned, champion),
        executor_def=dg.in_process_executor,
        description=f"{spec.name}: rebuild the splits, tune a challenger and apply the gate.",
    )
    return UseCaseDefs(
        assets=[raw, clean, splits, tuned, champion],
        jobs=[ingest_job, retrain_job],
        sensors=[build_landing_sensor(spec, ingest_job.name)],
    )
