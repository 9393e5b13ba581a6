"""How each slot's champion fared on each day of a run: error on the labels, and drift.

One loop for every use case, over the run's partitions (one landed day, or a history file's
range). For each model slot:

- **Which champion.** The model judged is the slot's champion when the actuals arrive: now, or
  the run's ``mlops/as_of`` (a simulated or backfilled day's own time), per the promotion
  ledger. It is judged only on days after its training window (out of sample); earlier days,
  and every day before a first champion, get a status and cost no model load.
- **Rows.** The judged days' stored ``clean_data`` (with, for a forecast, the days before them:
  its features are lags of its series, computed by the training code as the service does).
- **A span.** ``model_performance[d]`` scores the judged days of the span ending ``d``: one day,
  or for a forecast a season (a week), because RMSSE is per series and one day gives each
  series a single error. Drift compares day ``d`` alone with the training data.
- **Served predictions.** The prediction log of the days that can hold answers for these rows
  (the same days, or for a forecast the whole log: a forecast may be asked any day before).

The results are metadata per asset and day (prefixed by the segment where there are several
slots), and one typed :class:`~mlops_assets.monitoring.summary.DaySummary` per judged day for the
retraining policy.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlops_assets import names
from mlops_assets.features.derived import model_spec, with_derived
from mlops_assets.features.forecast import history_needed, prepare_history
from mlops_assets.features.history import StoredHistory
from mlops_assets.features.pipeline import model_input
from mlops_assets.ingest.days import day_of_rows
from mlops_assets.metrics import HIGHER_IS_BETTER
from mlops_assets.monitoring.drift import ColumnDrift, column_drift, drift_report_html
from mlops_assets.monitoring.profile import (
    compare,
    prediction_psi,
    profile_drifts,
    profiled,
    read_profile,
)
from mlops_assets.monitoring.summary import DaySummary, SlotSummary
from mlops_assets.prediction_log import served_predictions
from mlops_assets.registry.ledger import champion_on, read_ledger, training_window
from mlops_assets.registry.tracking import Tracking
from mlops_assets.specs.model import UseCaseSpec
from mlops_assets.storage.objectstore import ObjectStore
from mlops_assets.storage.tables import read_table, table_key
from mlops_assets.training.evaluation import evaluate, labelled, score_predictions
from mlops_assets.training.families import predict_frame

REFERENCE_SAMPLE = 5000
NO_CHAMPION = "no champion yet"
IN_WINDOW = "in the champion's training window"


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
    """Metrics of the served predictions joined to the labels by :func:`join_columns`.

    Where a prediction was served several times for one row, the last answer counts.
    """
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


def reference_sample(reference: pd.DataFrame) -> pd.DataFrame:
    """The training rows whose predictions stand for the reference in prediction drift."""
    return reference.sample(min(len(reference), REFERENCE_SAMPLE), random_state=0)


# ---------------------------------------------------------------- which days, which rows


def scored_span(spec: UseCaseSpec) -> int:
    """Days one ``model_performance`` partition scores: a season for a forecast, else one."""
    return spec.forecast.seasonal_period if spec.forecast is not None else 1


def lookback_days(spec: UseCaseSpec) -> int:
    """Days before a monitored day that its rows need: the features' history and the span."""
    history = history_needed(spec) if spec.forecast is not None else 0
    return history + scored_span(spec) - 1


def judged_days(window: tuple[str, str] | None, version: str | None, days: list[str]) -> list[str]:
    """The days of ``days`` after the champion's training ``window`` (none without a champion)."""
    if version is None:
        return []
    return [day for day in days if window is None or day > window[1]]


def model_rows(store: ObjectStore, spec: UseCaseSpec, days: list[str]) -> pd.DataFrame:
    """Stored clean rows from ``lookback_days`` before the first day to the last, as model rows.

    A forecast's rows come back zero-filled with their derived features, computed from the
    stored days as the scorer computes them; other tasks get the clean rows unchanged.
    """
    first = dt.date.fromisoformat(days[0]) - dt.timedelta(days=lookback_days(spec))
    rows = StoredHistory(store, spec).rows(first, dt.date.fromisoformat(days[-1]))
    if rows.empty or spec.forecast is None:
        return rows
    return prepare_history(rows, spec, known_from=pd.Timestamp(first))


def rows_between(rows: pd.DataFrame, spec: UseCaseSpec, first: str, last: str) -> pd.DataFrame:
    """The rows whose partition is in ``first..last``."""
    if rows.empty:
        return rows
    days = day_of_rows(rows, spec)
    return rows[(days >= first) & (days <= last)]


def log_days(spec: UseCaseSpec, days: list[str]) -> list[str] | None:
    """The prediction log days that can hold answers for rows of ``days`` (``None``: all).

    A landed day's rows are scored on the day they land; a forecast for a day may have been
    asked for on any earlier day.
    """
    return None if spec.forecast is not None else days


# ---------------------------------------------------------------- one slot


@dataclass
class SlotFindings:
    """A slot's metadata per asset and day, and its summary per judged day."""

    metadata: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    summaries: dict[str, SlotSummary] = field(default_factory=dict)
    version: str | None = None
    judged: list[str] = field(default_factory=list)


def performance_metadata(
    spec: UseCaseSpec,
    pipeline: Any,
    rows: pd.DataFrame,
    version: str,
    ledger: pd.DataFrame,
    served: pd.DataFrame,
) -> dict[str, Any]:
    """Metrics of a champion on the labelled rows of its judged span, and of what it served."""
    metadata: dict[str, Any] = {names.CHAMPION_VERSION: version}
    window = training_window(ledger, version)
    if window is not None:
        metadata["train_window"] = f"{window[0]}..{window[1]}"
    scored = labelled(rows, spec)
    metadata["labelled_rows"] = len(scored)
    if scored.empty:
        metadata["status"] = "no labels for this day"
        return metadata
    scores = evaluate(spec, pipeline, scored)
    metadata.update(scores)
    metadata["status"] = "scored out of sample"
    reference = reference_score(ledger, version, spec.primary_metric)
    if reference is not None:
        observed = scores[spec.primary_metric]
        metadata[f"reference_{spec.primary_metric}"] = reference
        metadata["degradation"] = degradation(spec.primary_metric, observed, reference)
        metadata["metric_change"] = worsening(spec.primary_metric, observed, reference)
    metadata.update(served_metrics(spec, served, scored))
    return metadata


@dataclass
class Reference:
    """What a champion's drift is measured against.

    The serving champion's own reference profile (its training rows, stored with the version);
    for a version registered before profiles existed, the latest stored training set (which may
    belong to a model that was never promoted).
    """

    profile: dict[str, Any] | None = None
    rows: pd.DataFrame | None = None
    predictions: np.ndarray | None = None

    @property
    def size(self) -> int:
        """Rows the reference stands for."""
        if self.profile is not None:
            return int(self.profile.get("rows", 0))
        return len(self.rows) if self.rows is not None else 0

    @property
    def source(self) -> str:
        """Where the reference comes from, for the metadata."""
        return "champion's profile" if self.profile is not None else "latest train_set"

    def drifts(self, spec: UseCaseSpec, current: pd.DataFrame) -> list[ColumnDrift]:
        """Per-feature PSI (and KS against reference rows) of the current rows."""
        if self.profile is not None:
            return profile_drifts(self.profile, current, spec)
        rows = with_derived(self.rows if self.rows is not None else current.iloc[0:0], spec)
        current = with_derived(current, spec)
        return [
            column_drift(c.name, c.type, rows[c.name], current[c.name])
            for c in profiled(spec)
            if c.type != "date" and c.name in current.columns and c.name in rows.columns
        ]

    def prediction_psi(self, spec: UseCaseSpec, predictions: np.ndarray) -> float | None:
        """PSI of the current predictions against the reference's."""
        if self.profile is not None:
            return prediction_psi(self.profile, predictions)
        if self.predictions is None:
            return None
        kind = "categorical" if spec.is_classification else "numeric"
        reference = pd.Series(self.predictions)
        return column_drift("prediction", kind, reference, pd.Series(predictions)).psi


def slot_reference(
    store: ObjectStore, view: UseCaseSpec, modelled: UseCaseSpec, version: str, pipeline: Any
) -> Reference | None:
    """The champion's reference (its profile, else the latest training set), or ``None``."""
    profile = read_profile(store, view, version)
    if profile is not None:
        return Reference(profile=profile)
    path = table_key(names.asset_path(view.name, names.TRAIN_SET))
    if not store.exists(path):
        return None
    rows = read_table(store, path)
    sample = model_input(reference_sample(rows), modelled)
    predictions, _ = predict_frame(pipeline, sample, modelled)
    return Reference(rows=rows, predictions=predictions)


def drift_metadata(
    spec: UseCaseSpec,
    pipeline: Any,
    rows: pd.DataFrame,
    reference: Reference,
    day: str,
    store: ObjectStore,
) -> dict[str, Any]:
    """Drift of a day's rows against the champion's reference.

    Per-feature PSI (KS for numerics against reference rows), prediction drift, and the
    batch's shifts (null rates, unseen values) against the champion's profile.
    """
    drifts = reference.drifts(spec, rows)
    current, _ = predict_frame(pipeline, model_input(rows, spec), spec)
    prediction_psi_value = reference.prediction_psi(spec, current)
    worst = max(drifts, key=lambda d: d.psi)
    threshold = spec.retraining.max_psi
    suffix = f"-{spec.segment}" if spec.segment else ""
    report_key = f"{names.reports_prefix(spec.name)}data_drift/{day}{suffix}.html"
    title = f"{spec.name} data drift {day}"
    shown = [*drifts]
    if prediction_psi_value is not None:
        shown.append(ColumnDrift("prediction", "prediction", prediction_psi_value))
    store.put_bytes(report_key, drift_report_html(title, shown, threshold).encode())
    metadata: dict[str, Any] = {
        "max_psi": worst.psi,
        "max_psi_feature": worst.column,
        "drifted_features": sorted(d.column for d in drifts if d.psi > threshold),
        "psi_threshold": threshold,
        "rows": len(rows),
        "reference_rows": reference.size,
        "reference": reference.source,
        "report": store.describe(report_key),
    }
    if prediction_psi_value is not None:
        metadata["prediction_psi"] = prediction_psi_value
    for d in drifts:
        metadata[f"psi_{d.column}"] = d.psi
        if d.ks_statistic is not None:
            metadata[f"ks_{d.column}"] = d.ks_statistic
    if reference.profile is not None:
        shifts = compare(reference.profile, rows, spec)
        if shifts:
            nulls = max(shifts, key=lambda f: abs(f.null_rate_shift))
            unseen = max(shifts, key=lambda f: f.unseen_share + f.out_of_range_share)
            metadata["max_null_rate_shift"] = nulls.null_rate_shift
            metadata["max_null_rate_shift_feature"] = nulls.column
            metadata["max_unseen_share"] = unseen.unseen_share + unseen.out_of_range_share
            metadata["max_unseen_share_feature"] = unseen.column
    if not spec.is_classification:
        metadata["prediction_mean"] = float(np.mean(current))
    return metadata


def judge_slot(
    view: UseCaseSpec,
    store: ObjectStore,
    tracking: Tracking,
    days: list[str],
    as_of_day: str,
    log_database: str | None,
) -> SlotFindings:
    """One slot's findings on every day of a run (see the module docstring)."""
    findings = SlotFindings()
    ledger = read_ledger(store, view)
    version = champion_on(ledger, as_of_day)
    window = training_window(ledger, version) if version is not None else None
    judged = judged_days(window, version, days)
    findings.version, findings.judged = version, judged
    for day in days:
        if day not in judged:
            status = NO_CHAMPION if version is None else IN_WINDOW
            for asset in (names.MODEL_PERFORMANCE, names.DATA_DRIFT):
                findings.metadata[(asset, day)] = {"status": status}
    if version is None or not judged:
        return findings
    modelled = model_spec(view)  # a forecast's lags are model features (and drift columns)
    pipeline = tracking.load_pipeline(view.registered_model_name(), version)
    rows = model_rows(store, view, judged)
    served = served_predictions(store, view, log_days(view, judged), log_database)
    reference = slot_reference(store, view, modelled, version, pipeline)
    span = scored_span(view)
    out_of_sample = window[1] if window else None
    for day in judged:
        start = (dt.date.fromisoformat(day) - dt.timedelta(days=span - 1)).isoformat()
        if out_of_sample is not None and start <= out_of_sample:
            start = (dt.date.fromisoformat(out_of_sample) + dt.timedelta(days=1)).isoformat()
        performance = performance_metadata(
            modelled, pipeline, rows_between(rows, view, start, day), version, ledger, served
        )
        if span > 1:
            performance["scored_days"] = f"{start}..{day}"
        findings.metadata[(names.MODEL_PERFORMANCE, day)] = performance
        today = rows_between(rows, view, day, day)
        if reference is None or today.empty:
            status = "no training reference yet" if reference is None else "no rows this day"
            drift: dict[str, Any] = {"status": status}
        else:
            drift = drift_metadata(modelled, pipeline, today, reference, day, store)
        findings.metadata[(names.DATA_DRIFT, day)] = drift
        findings.summaries[day] = SlotSummary(
            segment=view.segment,
            champion_version=version,
            status=str(performance.get("status")),
            metric=view.primary_metric,
            score=performance.get(view.primary_metric),
            degradation=performance.get("degradation"),
            metric_change=performance.get("metric_change"),
            max_psi=drift.get("max_psi"),
            max_psi_feature=drift.get("max_psi_feature"),
            metrics={m: performance[m] for m in view.reported_metrics if m in performance},
        )
    return findings


# ---------------------------------------------------------------- every slot


@dataclass
class Monitoring:
    """A run's findings: metadata per asset and day, and a summary per judged day."""

    metadata: dict[tuple[str, str], dict[str, Any]]
    summaries: list[DaySummary]
    judged: dict[str | None, tuple[str | None, int]]  # slot -> (version judged, days judged)


def monitor(
    spec: UseCaseSpec,
    store: ObjectStore,
    tracking: Tracking,
    days: list[str],
    as_of_day: str,
    log_database: str | None = None,
    run_id: str = "",
) -> Monitoring:
    """Every slot's findings on every day of a run; a slot's metadata keys carry its segment."""
    metadata: dict[tuple[str, str], dict[str, Any]] = {
        (asset, day): {} for asset in (names.MODEL_PERFORMANCE, names.DATA_DRIFT) for day in days
    }
    summaries: dict[str, list[SlotSummary]] = {}
    judged: dict[str | None, tuple[str | None, int]] = {}
    for view in spec.segment_specs():
        found = judge_slot(view, store, tracking, days, as_of_day, log_database)
        prefix = f"{view.segment}_" if spec.segments else ""
        for key, values in found.metadata.items():
            metadata[key].update({f"{prefix}{k}": v for k, v in values.items()})
        for day, summary in found.summaries.items():
            summaries.setdefault(day, []).append(summary)
        judged[view.segment] = (found.version, len(found.judged))
    return Monitoring(
        metadata=metadata,
        summaries=[DaySummary(day, slots, run_id) for day, slots in sorted(summaries.items())],
        judged=judged,
    )


def metadata_by_day(found: Monitoring, asset: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """One asset's metadata, day by day."""
    for (name, day), values in sorted(found.metadata.items()):
        if name == asset:
            yield day, values
