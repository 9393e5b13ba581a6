"""The monitoring view's content, on one calendar from the first landed day (pure), and drawn."""

import math

import pandas as pd
import pytest

from mlops_assets.monitoring.chart import chart_data, chart_markdown, render_png
from mlops_assets.monitoring.summary import DaySummary, SlotSummary
from mlops_assets.registry.ledger import LedgerEntry
from mlops_assets.specs import use_case_specs


def judged(day: str, version: str, score: float, psi: float, segment=None) -> SlotSummary:
    return SlotSummary(
        segment=segment,
        champion_version=version,
        status="scored out of sample",
        metric="rmse",
        score=score,
        max_psi=psi,
        max_psi_feature="Item_MRP",
        metrics={"mae": score / 2},
    )


def gate(day: str, version: str, score: float, baseline: float, segment=None) -> dict:
    entry = LedgerEntry(
        action="promotion_gate",
        model_name="m",
        champion_version=version,
        reason="",
        promoted=True,
        challenger_version=version,
        challenger_score=score,
        baseline_score=baseline,
        at=f"{day}T23:59:59+00:00",
        segment=segment,
    )
    return vars(entry)


def rollback(day: str, version: str) -> dict:
    entry = LedgerEntry(
        action="rollback",
        model_name="m",
        champion_version=version,
        reason="",
        at=f"{day}T10:00:00+00:00",
    )
    return vars(entry)


def test_one_calendar_from_the_first_landed_day() -> None:
    spec = use_case_specs()["bigmart_sales"]  # partitions start 2024-01-01: not the view's start
    ledger = pd.DataFrame(
        [
            gate("2026-11-03", "1", 700.0, 1600.0),
            gate("2026-11-06", "2", 900.0, 2000.0),
            rollback("2026-11-08", "1"),
        ]
    )
    summaries = [
        DaySummary("2026-11-04", [judged("2026-11-04", "1", 710.0, 0.05)]),
        DaySummary("2026-11-05", [judged("2026-11-05", "1", 2200.0, 4.7)]),
        DaySummary("2026-11-07", [judged("2026-11-07", "2", 950.0, 0.3)]),
    ]
    data = chart_data(spec, summaries, ledger, first_day="2026-11-01")
    assert data.days[0] == "2026-11-01" and data.days[-1] == "2026-11-08"
    assert (data.metric, data.secondary_metric, data.max_psi) == ("rmse", "mae", 0.2)
    [slot] = data.slots
    assert [math.isnan(v) for v in slot.score] == [
        True,
        True,
        True,
        False,
        False,
        True,
        False,
        True,
    ]
    assert slot.secondary[4] == 1100.0 and slot.max_psi[4] == 4.7
    # The champion of each day: before the first promotion none; the ledger fills the gaps.
    assert slot.champion == [None, None, "1", "1", "1", "2", "2", "1"]
    assert slot.test_score[3:8] == [700.0, 700.0, 900.0, 900.0, 700.0]
    assert (
        math.isnan(slot.baseline[1]) and slot.baseline[3] == 1600.0 and slot.baseline[6] == 2000.0
    )
    assert [(e.day, e.kind, e.label) for e in data.events] == [
        ("2026-11-03", "promotion", "v1"),
        ("2026-11-06", "promotion", "v2"),
        ("2026-11-08", "rollback", "rollback to v1"),
    ]


def test_every_segment_is_a_slot_of_its_own() -> None:
    spec = use_case_specs()["mushroom"]
    ledger = pd.DataFrame(
        [
            gate("2026-11-01", "1", 0.5, 0.7, "cap_gill"),
            gate("2026-11-02", "3", 0.4, 0.69, "stem_season"),
        ]
    )
    summaries = [
        DaySummary(
            "2026-11-03",
            [
                judged("2026-11-03", "1", 0.52, 0.1, "cap_gill"),
                judged("2026-11-03", "3", 0.41, 0.2, "stem_season"),
            ],
        )
    ]
    data = chart_data(spec, summaries, ledger, first_day="2026-11-01")
    assert [s.segment for s in data.slots] == ["cap_gill", "stem_season"]
    cap, stem = data.slots
    assert cap.champion == ["1", "1", "1"] and stem.champion == [None, "3", "3"]
    assert cap.baseline[2] == 0.7 and stem.baseline[2] == 0.69
    assert [e.label for e in data.events] == ["cap_gill v1", "stem_season v3"]


@pytest.mark.parametrize("use_case", ["bigmart_sales", "mushroom"])
def test_the_chart_is_a_png_for_markdown(use_case: str) -> None:
    spec = use_case_specs()[use_case]
    segment = spec.segment_names[0] if spec.segments else None
    summaries = [DaySummary("2026-11-02", [judged("2026-11-02", "1", 1.0, 0.3, segment)])]
    ledger = pd.DataFrame([gate("2026-11-01", "1", 1.0, 2.0, segment)])
    png = render_png(chart_data(spec, summaries, ledger, "2026-11-01"))
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and 5_000 < len(png) < 200_000
    assert chart_markdown(png, "x").startswith("![x](data:image/png;base64,iVBORw0KGgo")
    # Nothing landed yet: an empty chart, not an error.
    empty = chart_data(spec, [], ledger.iloc[0:0], None)
    assert empty.days == [] and render_png(empty)[:4] == b"\x89PNG"
