"""``model_performance[day]`` and ``data_drift[day]``: how the champion of each day fared.

Both are computed in one step per day (the champion is loaded once) and emit numeric metadata,
so the Dagster UI plots them over partitions. The champion of a day is read from the promotion
ledger, and its error is reported only on days outside its training window (out of sample).
An event-date use case monitors a whole range of days in one step (see
:mod:`mlops_assets.monitoring.event_dates`).
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from mlops_assets import settings
from mlops_assets.features.assets import clean_key, train_key
from mlops_assets.ingest.event_dates import backfill_policy, by_event_date
from mlops_assets.metrics import HIGHER_IS_BETTER
from mlops_assets.partitions import daily_partitions
from mlops_assets.registry.ledger import champion_on, read_ledger, training_window
from mlops_assets.registry.mlflow_resource import MlflowTracking
from mlops_assets.specs.model import UseCaseSpec
from mlops_assets.storage.objectstore import ObjectStore
from mlops_assets.storage.resources import STORAGE_RETRY_POLICY, ObjectStorage
from mlops_assets.storage.tables import read_table, table_key

REFERENCE_SAMPLE = 5000


def performance_key(spec: UseCaseSpec) -> dg.AssetKey:
    """Asset key of the daily model performance."""
    return dg.AssetKey([spec.name, "model_performance"])


def drift_key(spec: UseCaseSpec) -> dg.AssetKey:
    """Asset key of the daily data drift."""
    return dg.AssetKey([spec.name, "data_drift"])


def reference_score(ledger: pd.DataFrame, version: str, metric: str) -> float | None:
    """The version's primary metric on the test set when the gate last scored it."""
    as_challenger = ledger[
        (ledger["action"] == "promotion_gate")
        & (ledger["challenger_version"].astype(str) == version)
    ]
    if as_challenger.empty or as_challenger.iloc[-1]["metric"] != metric:
        return None
    return float(as_challenger.iloc[-1]["challenger_score"])


def worsening(metric: str, observed: float, reference: float) -> float:
    """How much worse the observed metric is than the reference, in its units (positive = worse)."""
    sign = -1.0 if metric in HIGHER_IS_BETTER else 1.0
    return sign * (observed - reference)


def degradation(metric: str, observed: float, reference: float) -> float:
    """How much worse the observed metric is than the reference, as a share (positive = worse)."""
    if reference == 0:
        return 0.0
    return worsening(metric, observed, reference) / abs(reference)


def served_predictions(store: ObjectStore, spec: UseCaseSpec, day: str | None) -> pd.DataFrame:
    """What the service answered on ``day`` (its prediction log, wherever it is), maybe empty.

    ``day=None``: every answer it logged, oldest first. A segment's view keeps its own model's
    answers only.
    """
    from mlops_assets.serving.prediction_log import read_prediction_log

    database = settings.prediction_log_database()
    # A segment's rows are in its own table (columns differ), or beside the others in storage.
    source = spec.registered_model_name() if database else spec.name
    served = read_prediction_log(store, source, day, database)
    if spec.segment and "model_name" in served.columns:
        served = served[served["model_name"] == spec.registered_model_name()]
    return served


def join_columns(spec: UseCaseSpec) -> list[str]:
    """Columns that tie a served prediction to its labelled row.

    A forecast's row is its series on its date (calendar ids such as ``d`` may be left out of a
    request); other use cases join on their id columns. A use case without ids (mushroom,
    obesity) joins on every input column: a labelled row is the served record whose cleaned
    values are all the same (the log keeps them cleaned, as ``clean_data`` does).
    """
    if spec.task == "forecast" and spec.forecast is not None and spec.partitions.date_column:
        return [*spec.forecast.series, spec.partitions.date_column]
    return spec.id_names or [c.name for c in spec.input_columns]


def comparable(spec: UseCaseSpec, columns: list[str], frame: pd.DataFrame) -> pd.DataFrame:
    """``columns`` of ``frame`` in one dtype per kind, so the log and the labels join.

    The log keeps timestamps (a day's rows carry midnight), text as ``string`` and integers as
    ``Int64``; clean data may hold the same values as dates, objects and floats.
    """
    kinds = {c.name: c.type for c in spec.input_columns}
    typed: dict[str, pd.Series] = {}
    for name in columns:
        kind = kinds.get(name, "categorical")
        if kind == "date":
            typed[name] = pd.to_datetime(frame[name]).dt.normalize()
        elif kind in {"numeric", "integer"}:
            typed[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
        else:
            typed[name] = frame[name].astype("string")
    return frame.assign(**typed)


def served_metrics(spec: UseCaseSpec, served: pd.DataFrame, labelled: pd.DataFrame) -> dict:
    """Metrics of the served predictions joined to the day's labels by the id columns.

    Where a prediction was served several times for one row, the last answer counts.
    """
    from mlops_assets.training.evaluation import score_predictions

    ids = join_columns(spec)
    if served.empty or not ids or not set(ids) <= set(served.columns):
        return {"served_rows": 0}
    last = served.drop_duplicates(subset=ids, keep="last")
    last, labelled = comparable(spec, ids, last), comparable(spec, ids, labelled)
    joined = labelled.merge(last, on=ids, how="inner", suffixes=("", "_served"))
    if joined.empty:
        return {"served_rows": 0}
    proba = None
    if spec.is_classification:
        proba = joined[[f"proba_{c}" for c in spec.target.classes or []]].to_numpy()
    scores = score_predictions(
        spec, joined[spec.target.name], joined["prediction"].to_numpy(), proba, joined
    )
    return {"served_rows": len(joined), **{f"served_{k}": v for k, v in scores.items()}}


def performance_metadata(
    spec: UseCaseSpec,
    pipeline: Any,
    clean: pd.DataFrame,
    day: str,
    version: str,
    ledger: pd.DataFrame,
    store: ObjectStore,
    served: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Metrics of the day's champion on the day's labels, when the day is out of sample.

    ``served``: the predictions the service answered for these rows; default: the prediction
    log of ``day`` (a landing day's rows are scored on the day they land).
    """
    from mlops_assets.training.evaluation import evaluate, labelled

    metadata: dict[str, Any] = {"champion_version": version}
    window = training_window(ledger, version)
    if window is not None:
        metadata["train_window"] = f"{window[0]}..{window[1]}"
    rows = labelled(clean, spec)
    metadata["labelled_rows"] = len(rows)
    if window is not None and window[0] <= day <= window[1]:
        metadata["status"] = "in the champion's training window: not scored"
        return metadata
    if rows.empty:
        metadata["status"] = "no labels for this day"
        return metadata
    scores = evaluate(spec, pipeline, rows)
    metadata.update(scores)
    metadata["status"] = "scored out of sample"
    reference = reference_score(ledger, version, spec.primary_metric)
    if reference is not None:
        metadata[f"reference_{spec.primary_metric}"] = reference
        metadata["degradation"] = degradation(
            spec.primary_metric, scores[spec.primary_metric], reference
        )
        metadata["metric_change"] = worsening(
            spec.primary_metric, scores[spec.primary_metric], reference
        )
    if served is None:
        served = served_predictions(store, spec, day)
    metadata.update(served_metrics(spec, served, rows))
    return metadata


def reference_sample(reference: pd.DataFrame) -> pd.DataFrame:
    """The training rows whose predictions stand for the reference in prediction drift."""
    return reference.sample(min(len(reference), REFERENCE_SAMPLE), random_state=0)


def drift_metadata(
    spec: UseCaseSpec,
    pipeline: Any,
    clean: pd.DataFrame,
    reference: pd.DataFrame,
    day: str,
    store: ObjectStore,
    reference_predictions: np.ndarray | None = None,
) -> dict[str, Any]:
    """Per-feature PSI (and KS for numerics) and prediction drift against the training data.

    ``reference_predictions``: the champion's predictions on :func:`reference_sample`, when a
    run monitoring many days has them already.
    """
    from mlops_assets.features.pipeline import model_input
    from mlops_assets.monitoring.drift import column_drift, drift_report_html
    from mlops_assets.training.families import predict_frame

    drifts = [
        column_drift(c.name, c.type, reference[c.name], clean[c.name])
        for c in spec.features
        if c.type != "date" and c.name in clean.columns and c.name in reference.columns
    ]
    ref_pred = reference_predictions
    if ref_pred is None:
        ref_pred, _ = predict_frame(pipeline, model_input(reference_sample(reference), spec), spec)
    cur_pred, _ = predict_frame(pipeline, model_input(clean, spec), spec)
    prediction = column_drift(
        "prediction",
        "categorical" if spec.is_classification else "numeric",
        pd.Series(ref_pred),
        pd.Series(cur_pred),
    )
    worst = max(drifts, key=lambda d: d.psi)
    threshold = spec.retraining.max_psi
    suffix = f"-{spec.segment}" if spec.segment else ""
    report_key = f"{spec.name}/reports/data_drift/{day}{suffix}.html"
    store.put_bytes(
        report_key,
        drift_report_html(
            f"{spec.name} data drift {day}", [*drifts, prediction], threshold
        ).encode(),
    )
    metadata: dict[str, Any] = {
        "max_psi": worst.psi,
        "max_psi_feature": worst.column,
        "drifted_features": dg.MetadataValue.json(
            sorted(d.column for d in drifts if d.psi > threshold)
        ),
        "psi_threshold": threshold,
        "prediction_psi": prediction.psi,
        "rows": len(clean),
        "reference_rows": len(reference),
        "report": dg.MetadataValue.path(store.describe(report_key)),
    }
    for d in drifts:
        metadata[f"psi_{d.column}"] = d.psi
        if d.ks_statistic is not None:
            metadata[f"ks_{d.column}"] = d.ks_statistic
    if ref_pred.dtype.kind == "f":
        metadata["prediction_mean"] = float(np.mean(cur_pred))
    return metadata


def build_monitoring(spec: UseCaseSpec) -> dg.AssetsDefinition:
    """``model_performance`` and ``data_drift`` of one use case, one step per day."""
    partitions = daily_partitions(spec)

    @dg.multi_asset(
        specs=[
            dg.AssetSpec(
                performance_key(spec),
                deps=[clean_key(spec)],
                partitions_def=partitions,
                group_name=spec.name,
                kinds={"pandas"},
                description=f"{spec.name}: the day's champion's error on the day's labels "
                "(out of sample only), and of the predictions it served.",
            ),
            dg.AssetSpec(
                drift_key(spec),
                deps=[clean_key(spec), train_key(spec)],
                partitions_def=partitions,
                group_name=spec.name,
                kinds={"pandas", "scipy"},
                description=f"{spec.name}: per-feature PSI/KS and prediction drift against the "
                "training data, with an HTML report.",
            ),
        ],
        name=f"{spec.name}__monitoring",
        partitions_def=partitions,
        backfill_policy=backfill_policy(spec),  # an event-date range is one run, as ingestion
        # Reads the lake and the registry: an outage of either is retried with backoff.
        retry_policy=STORAGE_RETRY_POLICY,
    )
    def monitoring(
        context: dg.AssetExecutionContext, lake: ObjectStorage, mlflow: MlflowTracking
    ) -> Iterator[dg.MaterializeResult]:
        from mlops_assets.registry.model_cache import load_version

        store = lake.store()
        if by_event_date(spec):  # a range of event dates, each day with its series' history
            from mlops_assets.monitoring.event_dates import event_date_monitoring

            yield from event_date_monitoring(context, spec, store, mlflow)
            return
        day = context.partition_key
        clean = read_table(store, table_key(clean_key(spec).path, day))
        if spec.segments:
            yield from segmented_monitoring(spec, clean, day, store, mlflow)
            return
        ledger = read_ledger(store, spec)
        version = champion_on(ledger, day)
        if version is None:
            for key in (performance_key(spec), drift_key(spec)):
                yield dg.MaterializeResult(asset_key=key, metadata={"status": "no champion yet"})
            return
        pipeline = load_version(mlflow, spec.registered_model_name(), version)
        yield dg.MaterializeResult(
            asset_key=performance_key(spec),
            metadata=performance_metadata(spec, pipeline, clean, day, version, ledger, store),
        )
        reference_key = table_key(train_key(spec).path)
        if not store.exists(reference_key):
            yield dg.MaterializeResult(
                asset_key=drift_key(spec), metadata={"status": "no training reference yet"}
            )
            return
        reference = read_table(store, reference_key)
        yield dg.MaterializeResult(
            asset_key=drift_key(spec),
            metadata=drift_metadata(spec, pipeline, clean, reference, day, store),
        )

    return monitoring


def segmented_monitoring(
    spec: UseCaseSpec, clean: pd.DataFrame, day: str, store: ObjectStore, mlflow: MlflowTracking
) -> Iterator[dg.MaterializeResult]:
    """Monitoring of a segmented use case: every segment's champion, metadata per segment.

    Each segment's metrics are prefixed by its name (``cap_gill_log_loss``); ``degradation``
    and ``max_psi`` are the worst segment's, so the retraining policy reads them unchanged.
    """
    from mlops_assets.registry.model_cache import load_version

    performance: dict[str, Any] = {}
    drift: dict[str, Any] = {}
    reference_key = table_key(train_key(spec).path)
    reference = read_table(store, reference_key) if store.exists(reference_key) else None
    for view in spec.segment_specs():
        segment = str(view.segment)
        ledger = read_ledger(store, view)
        version = champion_on(ledger, day)
        if version is None:
            performance[f"{segment}_status"] = "no champion yet"
            continue
        pipeline = load_version(mlflow, view.registered_model_name(), version)
        found = performance_metadata(view, pipeline, clean, day, version, ledger, store)
        performance.update({f"{segment}_{k}": v for k, v in found.items()})
        if found.get("degradation") is not None and found["degradation"] > performance.get(
            "degradation", float("-inf")
        ):
            performance["degradation"] = found["degradation"]
            performance["metric_change"] = found["metric_change"]
            performance["degradation_segment"] = segment
        if reference is None:
            continue
        segment_drift = drift_metadata(view, pipeline, clean, reference, day, store)
        for key in ("prediction_psi", "report", "prediction_mean"):
            if key in segment_drift:
                drift[f"{segment}_{key}"] = segment_drift.pop(key)
        drifted = set(drift.get("drifted_features", dg.MetadataValue.json([])).data)
        drifted |= set(segment_drift.pop("drifted_features").data)
        if segment_drift["max_psi"] > drift.get("max_psi", float("-inf")):
            drift["max_psi"] = segment_drift["max_psi"]
            drift["max_psi_feature"] = segment_drift["max_psi_feature"]
        segment_drift.pop("max_psi")
        segment_drift.pop("max_psi_feature")
        drift.update(segment_drift)
        drift["drifted_features"] = dg.MetadataValue.json(sorted(drifted))
    if not any(k.endswith("_champion_version") for k in performance):
        performance["status"] = "no champion yet"
    yield dg.MaterializeResult(asset_key=performance_key(spec), metadata=performance)
    if reference is None:
        drift = {"status": "no training reference yet"}
    elif not drift:
        drift = {"status": "no champion yet"}
    yield dg.MaterializeResult(asset_key=drift_key(spec), metadata=drift)
