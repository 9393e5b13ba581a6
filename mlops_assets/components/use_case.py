"""The ``UseCase`` component: one ``defs.yaml`` instance generates a use case's whole graph.

Every asset key is prefixed by the use case and every use case is one asset group, so the
lineage view of a group is the whole life of one model:

``raw_data → clean_data → train_set / test_set → tuned_model → champion_model → champion_bento``,
with ``promotion_ledger`` after the champions, and ``model_performance`` / ``data_drift`` judging
the champions on each day's clean data. A segmented use case has a ``tuned_model`` and a
``champion_model`` per segment (``<uc>/<segment>/tuned_model``), fed by the same splits.

The component's schema is the use-case spec itself (:class:`~mlops_assets.specs.model.
UseCaseSpec`, a pydantic model), so ``dg check yaml`` checks a ``defs.yaml`` against the spec's
JSON schema and ``dg check defs`` runs its cross-field validation too.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
from pydantic import BaseModel

from mlops_assets import names
from mlops_assets.components.automation import build_retrain_sensor, build_weekly_schedule
from mlops_assets.components.features import build_clean_data, build_splits
from mlops_assets.components.ingest import build_landing_sensor, build_raw_data, build_simulation
from mlops_assets.components.monitoring import build_monitoring
from mlops_assets.components.partitions import daily_partitions
from mlops_assets.components.registry import build_champion_model, build_promotion_ledger
from mlops_assets.components.resources import QUIET_RUNS
from mlops_assets.components.runs import heartbeat_hook
from mlops_assets.components.scaffold import UseCaseScaffolder
from mlops_assets.components.serving import build_champion_bento
from mlops_assets.components.training import build_tuned_model
from mlops_assets.features.derived import model_spec
from mlops_assets.specs.model import UseCaseSpec


def build_use_case(spec: UseCaseSpec) -> dg.Definitions:
    """Assets, checks, jobs, sensors and schedules of one use case, generated from its spec.

    The retrain job takes the executor of the code location (``MLOPS_RETRAIN_EXECUTOR``, set
    where the definitions are merged); the ingest job runs in process (light daily work).
    """
    raw = build_raw_data(spec)
    clean = build_clean_data(spec)
    modelled = model_spec(spec)  # derived features (a forecast's lags too) are model features
    splits = build_splits(modelled)
    views = modelled.segment_specs()
    tuned = [build_tuned_model(view) for view in views]
    champions = [build_champion_model(view) for view in views]
    ledger = build_promotion_ledger(spec)
    bento = build_champion_bento(modelled)
    monitoring = build_monitoring(spec)
    ingest_job = dg.define_asset_job(
        names.ingest_job(spec.name),
        selection=dg.AssetSelection.assets(raw, clean, monitoring),
        partitions_def=daily_partitions(spec),
        executor_def=dg.in_process_executor,
        hooks={heartbeat_hook},  # a killed run is noticed (components/runs.py)
        config=QUIET_RUNS,
        description=f"{spec.name}: ingest, check, clean and monitor landed days.",
    )
    retrain_job = dg.define_asset_job(
        names.retrain_job(spec.name),
        selection=dg.AssetSelection.assets(splits, *tuned, *champions, ledger, bento),
        hooks={heartbeat_hook},
        config=QUIET_RUNS,
        description=f"{spec.name}: rebuild the splits, tune a challenger and apply the gate.",
    )
    jobs: list[Any] = [ingest_job, retrain_job]
    schedules: list[Any] = [build_weekly_schedule(spec, retrain_job.name)]
    if spec.generator:
        simulate_job, simulate_schedule = build_simulation(spec)
        jobs.append(simulate_job)
        schedules.append(simulate_schedule)
    return dg.Definitions(
        assets=[raw, clean, splits, *tuned, *champions, ledger, bento, monitoring],
        jobs=jobs,
        sensors=[
            build_landing_sensor(spec, ingest_job.name),
            build_retrain_sensor(spec, retrain_job.name),
        ],
        schedules=schedules,
    )


@dg.scaffold_with(UseCaseScaffolder)
class UseCase(dg.Component, dg.Resolvable):
    """A model's whole life from one declarative spec: ingestion, training, promotion, serving.

    ``attributes`` are the use-case spec (see the README's spec table): columns, task, target,
    metrics, partitions, split, model families, tuning budget, promotion and retraining rules.
    """

    def __init__(self, spec: UseCaseSpec) -> None:
        self.spec = spec

    @classmethod
    def model(cls) -> type[BaseModel]:
        """The schema of ``attributes``: the use-case spec itself."""
        return UseCaseSpec

    @classmethod
    def resolve_from_model(cls, context: Any, model: Any) -> UseCase:
        """The component of a validated spec (cross-field checks ran while it was parsed)."""
        return cls(model)

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        """The use case's assets, checks, jobs, sensors and schedules."""
        return build_use_case(self.spec)
