"""Monitoring of an event-date use case: one run scores every day of its range.

An event-date run covers a range of days (a history file, or the days a new extract holds), so
the monitoring step runs once for the range and writes each day's metadata on that day's
partition (``add_asset_metadata`` with a partition key): the UI plots it over days as for any
use case, and the retraining policy reads the range's last day.

What differs from a landing-day use case:

- **Which champion.** A row's event date is when the sales happened, not when they arrived; the
  model judged is the champion when the actuals arrive (now, or the run's ``mlops/as_of``),
  and it is judged only on days after its training window. A history file that reaches back
  before the first champion costs no scoring, just a status per day.
- **Rows with their history.** A forecast's features are lags of its series, so the days are
  read from the stored ``clean_data`` together with the days before them and put through the
  training code (:func:`~mlops_assets.features.forecast.prepare_history`), as the service does.
- **A week, not a day.** The primary metric (RMSSE) is per series, and one day gives each series
  a single error; ``model_performance[d]`` scores the out-of-sample days of the season
  (``forecast.seasonal_period`` days, a week) ending ``d``. Drift compares day ``d`` alone.
- **Served forecasts** are read from the whole prediction log, once per run: a forecast for
  ``d`` may have been asked for on any earlier day, so the log of ``d`` alone would miss it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from mlops_assets.features.assets import train_key
from mlops_assets.monitoring.assets import (
    drift_key,
    drift_metadata,
    performance_key,
    performance_metadata,
    reference_sample,
    served_predictions,
)
from mlops_assets.registry.ledger import as_of, champion_on, read_ledger, training_window
from mlops_assets.registry.mlflow_resource import MlflowTracking
from mlops_assets.specs.model import UseCaseSpec
from mlops_assets.storage.objectstore import ObjectStore
from mlops_assets.storage.tables import read_table, table_key


def scored_span(spec: UseCaseSpec) -> int:
    """Days one ``model_performance`` partition scores: a season for a forecast, else one."""
    return spec.forecast.seasonal_period if spec.forecast is not None else 1


def lookback_days(spec: UseCaseSpec) -> int:
    """Days before a monitored day that its rows need: the features' history and the span."""
    from mlops_assets.features.forecast import history_needed

    history = history_needed(spec) if spec.forecast is not None else 0
    return history + scored_span(spec) - 1


def model_rows(store: ObjectStore, spec: UseCaseSpec, days: list[str]) -> pd.DataFrame:
    """Stored clean rows from ``lookback_days`` before the first day to the last, as model rows.

    A forecast's rows come back zero-filled with their derived features, computed from the
    stored days as the scorer computes them; other tasks get the clean rows unchanged.
    """
    from mlops_assets.features.forecast import prepare_history
    from mlops_assets.serving.history import StoredHistory

    first = dt.date.fromisoformat(days[0]) - dt.timedelta(days=lookback_days(spec))
    rows = StoredHistory(store, spec).rows(first, dt.date.fromisoformat(days[-1]))
    if rows.empty:
        return rows
    if spec.forecast is not None:
        return prepare_history(rows, spec, known_from=pd.Timestamp(first))
    date = spec.partitions.date_column or ""
    return rows.assign(**{date: pd.to_datetime(rows[date]).dt.normalize()}) if date else rows


def rows_between(rows: pd.DataFrame, spec: UseCaseSpec, first: str, last: str) -> pd.DataFrame:
    """The rows whose event date is in ``first..last``."""
    dates = pd.to_datetime(rows[spec.partitions.date_column or ""])
    return rows[(dates >= pd.Timestamp(first)) & (dates <= pd.Timestamp(last))]


def event_date_monitoring(
    context: dg.AssetExecutionContext,
    spec: UseCaseSpec,
    store: ObjectStore,
    mlflow: MlflowTracking,
) -> Iterator[dg.MaterializeResult]:
    """``model_performance`` and ``data_drift`` of every day of the run's range.

    Each day's findings go on its own partition; the results yielded last carry what the whole
    range shares (the range, the champion judged, how many days were scored).
    """
    days = sorted(context.partition_keys)
    ledger = read_ledger(store, spec)
    version = champion_on(ledger, as_of(context.run.tags)[:10])
    window = training_window(ledger, version) if version is not None else None
    judged = judged_days(window, version, days)
    shared: dict[str, Any] = {"monitored_range": f"{days[0]}..{days[-1]}"}
    for day in days:
        if day not in judged:
            status = "no champion yet" if version is None else "in the champion's training window"
            for key in (performance_key(spec), drift_key(spec)):
                context.add_asset_metadata({"status": status}, asset_key=key, partition_key=day)
    if version is not None and judged:
        judging = judge_days(spec, store, mlflow, ledger, version, window, judged)
        for key, day, metadata in judging:
            context.add_asset_metadata(metadata, asset_key=key, partition_key=day)
        shared["judged_version"] = version
    shared["judged_days"] = len(judged)
    yield dg.MaterializeResult(asset_key=performance_key(spec), metadata=shared)
    yield dg.MaterializeResult(asset_key=drift_key(spec), metadata=shared)


def judged_days(window: tuple[str, str] | None, version: str | None, days: list[str]) -> list[str]:
    """The days of ``days`` after the champion's training ``window`` (none without a champion)."""
    if version is None:
        return []
    return [day for day in days if window is None or day > window[1]]


def judge_days(
    spec: UseCaseSpec,
    store: ObjectStore,
    mlflow: MlflowTracking,
    ledger: pd.DataFrame,
    version: str,
    window: tuple[str, str] | None,
    days: list[str],
) -> Iterator[tuple[dg.AssetKey, str, dict[str, Any]]]:
    """Performance and drift metadata of each judged day, as (asset key, day, metadata)."""
    from mlops_assets.features.forecast import model_spec
    from mlops_assets.features.pipeline import model_input
    from mlops_assets.registry.model_cache import load_version
    from mlops_assets.training.families import predict_frame

    modelled = model_spec(spec)  # a forecast's lags are model features (and drift columns)
    pipeline = load_version(mlflow, spec.registered_model_name(), version)
    rows = model_rows(store, spec, days)
    out_of_sample = window[1] if window else None
    served = served_predictions(store, spec, None)  # a forecast may be asked any day
    reference_path = table_key(train_key(spec).path)
    reference = read_table(store, reference_path) if store.exists(reference_path) else None
    reference_predictions: np.ndarray | None = None
    if reference is not None:
        sample = model_input(reference_sample(reference), modelled)
        reference_predictions, _ = predict_frame(pipeline, sample, modelled)
    span = scored_span(spec)
    for day in days:
        start = (dt.date.fromisoformat(day) - dt.timedelta(days=span - 1)).isoformat()
        if out_of_sample is not None and start <= out_of_sample:
            start = (dt.date.fromisoformat(out_of_sample) + dt.timedelta(days=1)).isoformat()
        scored = rows_between(rows, spec, start, day) if len(rows) else rows
        performance = performance_metadata(
            modelled, pipeline, scored, day, version, ledger, store, served
        )
        performance["scored_days"] = f"{start}..{day}"
        yield performance_key(spec), day, performance
        today = rows_between(rows, spec, day, day) if len(rows) else rows
        if reference is None or today.empty:
            status = "no training reference yet" if reference is None else "no rows this day"
            yield drift_key(spec), day, {"status": status}
            continue
        drift = drift_metadata(
            modelled, pipeline, today, reference, day, store, reference_predictions
        )
        yield drift_key(spec), day, drift
