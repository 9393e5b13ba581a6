"""The monitoring view: one chart of a use case's life, read at a glance in the Dagster UI.

From the first landed day to the last day anything happened, per model slot: the primary metric
on each judged day with the trivial baseline's and the champion's test score, a secondary
metric, the largest feature drift against its threshold, which version was champion on each
day, and every promotion and rollback marked across the panels. Days without a judgement (no
champion yet, in its training window, nothing landed) are gaps, not zeros.

Everything is read from what the platform stores: the day summaries
(:mod:`~mlops_assets.monitoring.summary`) and the promotion ledger
(:mod:`~mlops_assets.registry.ledger`). :func:`chart_data` puts them on one calendar (pure, so
the chart's content is tested without drawing); :func:`render_png` draws it with matplotlib,
imported only there; :func:`chart_markdown` wraps the PNG for a markdown metadata value (the
Dagster UI renders ``data:`` images in markdown).
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import math
from dataclasses import dataclass, field

import pandas as pd

from mlops_assets import names
from mlops_assets.ingest.days import days_between
from mlops_assets.monitoring.summary import DaySummary, read_summaries
from mlops_assets.registry.ledger import read_ledger
from mlops_assets.specs.model import UseCaseSpec
from mlops_assets.storage.objectstore import ObjectStore
from mlops_assets.storage.tables import stored_partitions

NAN = float("nan")


@dataclass
class SlotSeries:
    """One model slot's values, one per day of :attr:`ChartData.days` (NaN: no value)."""

    segment: str | None
    score: list[float]
    secondary: list[float]
    max_psi: list[float]
    max_psi_feature: list[str | None]
    champion: list[str | None]  # the version judged that day (from the summaries and ledger)
    test_score: list[float]  # the champion's score on the test set when the gate scored it
    baseline: list[float]  # the trivial baseline's score at the latest gate decision

    @property
    def label(self) -> str:
        """The slot's name in legends ("" for an unsegmented use case)."""
        return self.segment or ""


@dataclass(frozen=True)
class Event:
    """A promotion or rollback, on the day it took effect."""

    day: str
    kind: str  # "promotion" or "rollback"
    segment: str | None
    version: str
    label: str


@dataclass
class ChartData:
    """Everything the chart shows, on one calendar."""

    use_case: str
    metric: str
    secondary_metric: str | None
    max_psi: float  # the policy's drift threshold (Y)
    days: list[str]
    slots: list[SlotSeries] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


def _number(value: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return NAN


def _text(value: object) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def secondary_metric(spec: UseCaseSpec) -> str | None:
    """The metric shown beside the primary one: the first other reported metric."""
    return next((m for m in spec.reported_metrics if m != spec.primary_metric), None)


def ledger_events(ledger: pd.DataFrame, segmented: bool) -> list[Event]:
    """Every promotion and rollback in the ledger, on its day (UTC)."""
    events = []
    for row in ledger.itertuples():
        segment = _text(getattr(row, "segment", None))
        prefix = f"{segment} " if segmented and segment else ""
        version = _text(row.champion_version) or ""
        if row.action == "promotion_gate" and bool(row.promoted):
            label = f"{prefix}v{version}"
            events.append(Event(str(row.at)[:10], "promotion", segment, version, label))
        elif row.action == "rollback":
            label = f"{prefix}rollback to v{version}"
            events.append(Event(str(row.at)[:10], "rollback", segment, version, label))
    return events


def _gate_steps(ledger: pd.DataFrame, segment: str | None, days: list[str]) -> tuple[list, dict]:
    """The baseline's score per day (from each gate decision on), and each version's test score."""
    gates = ledger[ledger["action"] == "promotion_gate"]
    if "segment" in gates.columns:
        gates = gates[[_text(value) == segment for value in gates["segment"]]]
    baseline = [NAN] * len(days)
    tested: dict[str, float] = {}
    for row in gates.itertuples():
        day = str(row.at)[:10]
        tested[str(row.challenger_version)] = _number(row.challenger_score)
        score = _number(getattr(row, "baseline_score", None))
        if math.isnan(score):
            continue
        for index, each in enumerate(days):
            if each >= day:
                baseline[index] = score
    return baseline, tested


def chart_data(
    spec: UseCaseSpec,
    summaries: list[DaySummary],
    ledger: pd.DataFrame,
    first_day: str | None,
    last_day: str | None = None,
) -> ChartData:
    """The chart's content: every day from ``first_day`` (the first landed day) on.

    The calendar ends on the last day with a summary, a ledger entry or ``last_day``,
    whichever is latest.
    """
    secondary = secondary_metric(spec)
    ends = [s.day for s in summaries] + [str(a)[:10] for a in ledger.get("at", [])]
    ends += [d for d in (first_day, last_day) if d]
    data = ChartData(spec.name, spec.primary_metric, secondary, spec.retraining.max_psi, [])
    if not ends:
        return data
    first = first_day or min(ends)
    data.days = days_between(first, max(ends))
    index = {day: i for i, day in enumerate(data.days)}
    segmented = bool(spec.segments)
    data.events = [e for e in ledger_events(ledger, segmented) if e.day in index]
    for view in spec.segment_specs():
        n = len(data.days)
        baseline, tested = _gate_steps(ledger, view.segment, data.days)
        series = SlotSeries(
            view.segment,
            [NAN] * n,
            [NAN] * n,
            [NAN] * n,
            [None] * n,
            [None] * n,
            [NAN] * n,
            baseline,
        )
        for summary in summaries:
            i = index.get(summary.day)
            slot = next((s for s in summary.slots if s.segment == view.segment), None)
            if i is None or slot is None:
                continue
            series.score[i] = _number(slot.score)
            series.secondary[i] = _number(slot.metrics.get(secondary)) if secondary else NAN
            series.max_psi[i] = _number(slot.max_psi)
            series.max_psi_feature[i] = slot.max_psi_feature
            series.champion[i] = slot.champion_version
        _fill_champions(series, data.events, data.days)
        series.test_score = [tested.get(v, NAN) if v else NAN for v in series.champion]
        data.slots.append(series)
    return data


def _fill_champions(series: SlotSeries, events: list[Event], days: list[str]) -> None:
    """The champion on days without a summary too, from the ledger's promotions and rollbacks."""
    mine = sorted((e for e in events if e.segment == series.segment), key=lambda e: e.day)
    current: str | None = None
    for i, day in enumerate(days):
        for event in mine:
            if event.day == day:
                current = event.version
        if series.champion[i] is None:
            series.champion[i] = current
        else:
            current = series.champion[i]


def first_landed_day(store: ObjectStore, spec: UseCaseSpec) -> str | None:
    """The first day with stored raw data (the view starts there, not at the spec's start)."""
    stored = stored_partitions(store, names.asset_path(spec.name, names.RAW_DATA))
    return stored[0] if stored else None


def monitoring_chart(store: ObjectStore, spec: UseCaseSpec, last_day: str | None = None) -> bytes:
    """The use case's monitoring view as a PNG, from what the lake holds now."""
    data = chart_data(
        spec,
        read_summaries(store, spec),
        read_ledger(store, spec),
        first_landed_day(store, spec),
        last_day,
    )
    return render_png(data)


def chart_markdown(png: bytes, title: str) -> str:
    """Markdown showing the PNG inline (a ``data:`` image, which the Dagster UI renders)."""
    encoded = base64.b64encode(png).decode("ascii")
    return f"![{title}](data:image/png;base64,{encoded})"


# ---------------------------------------------------------------- drawing

COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b"]
EVENT_COLOURS = {"promotion": "#2ca02c", "rollback": "#d62728"}


def render_png(data: ChartData, dpi: int = 80) -> bytes:
    """Draw :class:`ChartData`: champion strip, primary metric, secondary metric, drift."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    dates = [dt.date.fromisoformat(d) for d in data.days]
    rows = [0.5 + 0.35 * max(1, len(data.slots)), 3.0, 2.0, 2.0]
    figure = Figure(figsize=(11, sum(rows) + 0.9), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    strip, primary, secondary, drift = figure.subplots(
        4, 1, sharex=True, gridspec_kw={"height_ratios": rows}
    )
    span = f"{data.days[0]} .. {data.days[-1]}" if data.days else "nothing landed yet"
    figure.suptitle(f"{data.use_case}: monitoring, {span}", fontsize=12, x=0.01, ha="left")
    if not data.days:
        for axes in (strip, primary, secondary, drift):
            axes.set_axis_off()
        return _png(figure)
    _champion_strip(strip, data, dates)
    for i, series in enumerate(data.slots):
        colour = COLOURS[i % len(COLOURS)]
        name = f"{series.label} " if series.label else ""
        primary.plot(dates, series.score, "o-", color=colour, ms=3, label=f"{name}{data.metric}")
        primary.plot(
            dates,
            series.test_score,
            ":",
            drawstyle="steps-mid",
            color=colour,
            lw=1.2,
            label=f"{name}champion's test {data.metric}",
        )
        primary.plot(
            dates,
            series.baseline,
            "--",
            drawstyle="steps-post",
            color="grey",
            lw=1,
            label=f"{name}baseline (gate)",
        )
        if data.secondary_metric:
            secondary.plot(
                dates,
                series.secondary,
                "o-",
                color=colour,
                ms=3,
                label=f"{name}{data.secondary_metric}",
            )
        drift.plot(dates, series.max_psi, "o-", color=colour, ms=3, label=f"{name}max PSI")
        _mark_largest(drift, dates, series)
    drift.axhline(data.max_psi, color="#d62728", lw=1, ls="--", label=f"threshold {data.max_psi}")
    primary.set_ylabel(data.metric)
    secondary.set_ylabel(data.secondary_metric or "")
    if not data.secondary_metric:
        secondary.text(
            0.5,
            0.5,
            "no secondary metric",
            transform=secondary.transAxes,
            ha="center",
            va="center",
            color="grey",
        )
    drift.set_ylabel("largest PSI")
    for axes in (primary, secondary, drift):
        axes.grid(alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(loc="upper left", fontsize=8, ncols=3, framealpha=0.8)
    for event in data.events:
        day = dt.date.fromisoformat(event.day)
        for axes in (strip, primary, secondary, drift):
            axes.axvline(day, color=EVENT_COLOURS[event.kind], lw=1.2, alpha=0.8)
        primary.annotate(
            event.label,
            (day, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(3, -12),
            textcoords="offset points",
            fontsize=8,
            color=EVENT_COLOURS[event.kind],
        )
    figure.autofmt_xdate()
    drift.set_xlim(dates[0] - dt.timedelta(days=1), dates[-1] + dt.timedelta(days=1))
    return _png(figure)


def _champion_strip(axes, data: ChartData, dates: list[dt.date]) -> None:
    """One row per slot: the champion version of each day, as labelled bands."""
    axes.set_yticks(range(len(data.slots)), [s.label or "champion" for s in data.slots])
    axes.set_ylim(-0.6, len(data.slots) - 0.4)
    axes.tick_params(axis="y", length=0, labelsize=8)
    for spine in axes.spines.values():
        spine.set_visible(False)
    for row, series in enumerate(data.slots):
        start = 0
        for i in range(1, len(dates) + 1):
            if i < len(dates) and series.champion[i] == series.champion[start]:
                continue
            version = series.champion[start]
            if version is not None:
                left = dates[start] - dt.timedelta(hours=12)
                width = (dates[i - 1] - dates[start]).days + 1
                colour = COLOURS[int(version) % len(COLOURS)] if version.isdigit() else "grey"
                axes.barh(row, width, left=left, height=0.7, color=colour, alpha=0.35)
                middle = left + dt.timedelta(days=width / 2)
                axes.text(middle, row, f"v{version}", ha="center", va="center", fontsize=8)
            start = i
    axes.set_title(
        "champion version per day; promotions (green) and rollbacks (red) marked",
        fontsize=9,
        loc="left",
    )


def _mark_largest(axes, dates: list[dt.date], series: SlotSeries) -> None:
    """Name the feature of the largest drift of the slot."""
    values = [v if not math.isnan(v) else -1.0 for v in series.max_psi]
    if not values or max(values) < 0:
        return
    i = values.index(max(values))
    feature = series.max_psi_feature[i] or ""
    axes.annotate(
        f"{feature} {series.max_psi[i]:.2f}",
        (dates[i], series.max_psi[i]),
        xytext=(4, 4),
        textcoords="offset points",
        fontsize=8,
    )


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
