"""``model_performance[day]`` and ``data_drift[day]``: how each slot's champion fared each day.

Both are computed in one step per run (each champion is loaded once; see
:mod:`mlops_assets.monitoring.performance`) and emit numeric metadata on each day's partition,
so the Dagster UI plots them over partitions. The champions they judge are upstream in the
lineage. Each judged day's typed summary goes to storage for the retraining policy.
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg

from mlops_assets import names
from mlops_assets.components.checks import as_metadata
from mlops_assets.components.features import clean_key, train_key
from mlops_assets.components.partitions import daily_partitions
from mlops_assets.components.registry import champion_key
from mlops_assets.components.resources import (
    STORAGE_RETRY_POLICY,
    AlertWebhookResource,
    MlflowTracking,
    ObjectStorage,
    PredictionLogSettings,
    fails_at_once,
)
from mlops_assets.monitoring.alerts import threshold_alert
from mlops_assets.monitoring.chart import chart_markdown, monitoring_chart
from mlops_assets.monitoring.performance import metadata_by_day, monitor
from mlops_assets.monitoring.summary import write_summary
from mlops_assets.registry.ledger import as_of
from mlops_assets.specs.model import UseCaseSpec
from mlops_assets.storage.objectstore import ObjectStore


def performance_key(spec: UseCaseSpec) -> dg.AssetKey:
    """Asset key of the daily model performance."""
    return dg.AssetKey(names.asset_path(spec.name, names.MODEL_PERFORMANCE))


def drift_key(spec: UseCaseSpec) -> dg.AssetKey:
    """Asset key of the daily data drift."""
    return dg.AssetKey(names.asset_path(spec.name, names.DATA_DRIFT))


def monitoring_view(store: ObjectStore, spec: UseCaseSpec, day: str) -> dict[str, Any]:
    """The monitoring chart as metadata of ``model_performance``'s latest day in a run.

    Inline in a markdown value (the UI draws it under Overview -> Metadata), and as a PNG in
    the lake (``<storage>/<uc>/reports/monitoring.png``) for people outside the UI.
    """
    png = monitoring_chart(store, spec, day)
    key = f"{names.reports_prefix(spec.name)}monitoring.png"
    store.put_bytes(key, png)
    return {
        "monitoring_view": dg.MetadataValue.md(chart_markdown(png, f"{spec.name} monitoring")),
        "monitoring_view_file": dg.MetadataValue.path(store.describe(key)),
    }


def build_monitoring(spec: UseCaseSpec) -> dg.AssetsDefinition:
    """``model_performance`` and ``data_drift`` of one use case, one step per run."""
    partitions = daily_partitions(spec)
    champions = [champion_key(view) for view in spec.segment_specs()]

    @dg.multi_asset(
        specs=[
            dg.AssetSpec(
                performance_key(spec),
                deps=[clean_key(spec), *champions],
                partitions_def=partitions,
                group_name=spec.name,
                kinds={"pandas"},
                skippable=True,  # nothing is recorded for days before any champion
                description=f"{spec.name}: the champion's error on the day's labels "
                "(out of sample only), and of the predictions it served.",
            ),
            dg.AssetSpec(
                drift_key(spec),
                deps=[clean_key(spec), train_key(spec), *champions],
                partitions_def=partitions,
                group_name=spec.name,
                kinds={"pandas", "scipy"},
                skippable=True,
                description=f"{spec.name}: per-feature PSI/KS and prediction drift against the "
                "training data, with an HTML report.",
            ),
        ],
        name=names.monitoring_op(spec.name),
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),  # a range is one run, as ingestion
        # Reads the lake and the registry: an outage of either is retried with backoff.
        retry_policy=STORAGE_RETRY_POLICY,
    )
    def monitoring(
        context: dg.AssetExecutionContext,
        lake: ObjectStorage,
        mlflow: MlflowTracking,
        prediction_log: PredictionLogSettings,
        alerts: AlertWebhookResource,
    ) -> Iterator[dg.MaterializeResult]:
        days = sorted(context.partition_keys)
        store = lake.store()
        with fails_at_once(f"{spec.name} monitoring of {days[0]}..{days[-1]}"):
            found = monitor(
                spec,
                store,
                mlflow.tracking(),
                days,
                as_of(context.run.tags)[:10],
                prediction_log.database_url(),
                context.run_id,
            )
        if all(version is None for version, _ in found.judged.values()):
            # A history landed before any model: nothing to judge, and nothing recorded (a
            # status per day cost a history of 1,885 days 35 s of events). The days stay
            # missing here; the ones after the first promotion are judged as they land.
            context.log.info(
                f"no champion yet: {len(days)} day{'' if len(days) == 1 else 's'} "
                f"({days[0]}..{days[-1]}) not judged, nothing recorded"
            )
            return
        keys = {names.MODEL_PERFORMANCE: performance_key(spec), names.DATA_DRIFT: drift_key(spec)}
        for asset, key in keys.items():
            for day, values in metadata_by_day(found, asset):
                context.add_asset_metadata(as_metadata(values), asset_key=key, partition_key=day)
        for summary in found.summaries:
            write_summary(store, spec, summary)
        breach = threshold_alert(spec, found.summaries, context.run_id)
        if breach is not None:
            alerts.send(breach, context.log.warning)
        context.add_asset_metadata(
            monitoring_view(store, spec, days[-1]),
            asset_key=performance_key(spec),
            partition_key=days[-1],
        )
        shared = {"monitored_range": f"{days[0]}..{days[-1]}"}
        for segment, (version, judged) in found.judged.items():
            prefix = f"{segment}_" if segment else ""
            shared[f"{prefix}judged_version"] = version or ""
            shared[f"{prefix}judged_days"] = judged
        for key in keys.values():
            yield dg.MaterializeResult(asset_key=key, metadata=shared)

    return monitoring
