"""Data-quality gates on each day's batch, and the per-day verdict training honours.

A blocking asset check stops downstream steps only in its own run, so a later retraining run
would happily read a day whose checks failed. Each day therefore gets a verdict object next to
its tables (``<use_case>/quality/<day>.json``); the splits read only days whose raw and clean
checks all passed. A failed day stays stored and inspectable; the verdict says what failed.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from mlops_assets import names
from mlops_assets.features.cleaning import CleaningReport
from mlops_assets.features.validation import domain_violations
from mlops_assets.specs.model import UseCaseSpec
from mlops_assets.storage.objectstore import ObjectStore

RAW_CHECKS = {
    "schema": "Every id and feature column of the spec is present.",
    "row_count": "The batch has at least the spec's min_rows_per_batch rows.",
}
CLEAN_CHECKS = {
    "types": "Values that cannot be read as the column's type stay under max_invalid_fraction.",
    "null_rates": "Each column's missing share stays under max_null_fraction (0 if required).",
    "value_domains": "Values outside the spec's ranges and closed category sets stay under "
    "max_invalid_fraction.",
}


@dataclass
class CheckOutcome:
    """One check's verdict with the numbers behind it."""

    name: str
    passed: bool
    summary: str
    metadata: dict[str, Any] = field(default_factory=dict)


def raw_checks(raw: pd.DataFrame, spec: UseCaseSpec) -> list[CheckOutcome]:
    """Schema and row count of a raw batch."""
    required = [c.name for c in spec.input_columns]
    missing = [name for name in required if name not in raw.columns]
    rows = len(raw)
    return [
        CheckOutcome(
            "schema",
            not missing,
            f"missing columns {missing}" if missing else "all spec columns present",
            {"missing_columns": missing, "required_columns": len(required)},
        ),
        CheckOutcome(
            "row_count",
            rows >= spec.min_rows_per_batch,
            f"{rows} rows (minimum {spec.min_rows_per_batch})",
            {"rows": rows, "threshold": spec.min_rows_per_batch},
        ),
    ]


def _fraction(count: int, rows: int) -> float:
    return count / rows if rows else 0.0


def clean_checks(
    clean: pd.DataFrame, report: CleaningReport, spec: UseCaseSpec
) -> list[CheckOutcome]:
    """Types, null rates and value domains of a cleaned batch."""
    rows = max(report.rows_in, 1)
    limit = spec.max_invalid_fraction
    unreadable = {k: _fraction(v, rows) for k, v in report.invalid_values.items()}
    bad_types = {k: round(v, 4) for k, v in unreadable.items() if v > limit}
    null_shares = {
        c.name: _fraction(int(clean[c.name].isna().sum()), len(clean))
        for c in spec.input_columns
        if c.name in clean.columns
    }
    too_null = {
        c.name: round(null_shares[c.name], 4)
        for c in spec.input_columns
        if c.name in null_shares
        and null_shares[c.name] > (spec.max_null_fraction if c.nullable else 0.0)
    }
    outside = {k: _fraction(v, len(clean)) for k, v in domain_violations(clean, spec).items()}
    bad_domains = {k: round(v, 4) for k, v in outside.items() if v > limit}
    examples = {k: report.invalid_examples.get(k, []) for k in sorted(bad_types)}
    shown = "; ".join(f"{k}: {', '.join(v)}" for k, v in examples.items() if v)
    return [
        CheckOutcome(
            "types",
            not bad_types,
            f"unreadable values above {limit:.0%} in {sorted(bad_types)}"
            + (f" (e.g. {shown})" if shown else "")
            if bad_types
            else "ok",
            {
                "threshold": limit,
                "unreadable_share": unreadable,
                "failing": bad_types,
                "examples": examples,
            },
        ),
        CheckOutcome(
            "null_rates",
            not too_null,
            f"too many missing values in {sorted(too_null)}" if too_null else "ok",
            {"threshold": spec.max_null_fraction, "null_share": null_shares, "failing": too_null},
        ),
        CheckOutcome(
            "value_domains",
            not bad_domains,
            f"values outside the spec above {limit:.0%} in {sorted(bad_domains)}"
            if bad_domains
            else "ok",
            {"threshold": limit, "outside_share": outside, "failing": bad_domains},
        ),
    ]


def verdict_key(spec: UseCaseSpec, day: str) -> str:
    """Object key of a day's quality verdict."""
    return f"{names.quality_prefix(spec.name)}{day}.json"


def write_verdict(
    store: ObjectStore,
    spec: UseCaseSpec,
    day: str,
    stage: str,
    outcomes: list[CheckOutcome],
    run_id: str,
) -> None:
    """Record a stage's verdict; a new raw verdict clears the clean one (the day was re-read)."""
    key = verdict_key(spec, day)
    verdict: dict[str, Any] = {}
    if stage != "raw" and store.exists(key):
        verdict = json.loads(store.get_bytes(key))
    verdict[stage] = {
        "passed": all(o.passed for o in outcomes),
        "failed": {o.name: o.summary for o in outcomes if not o.passed},
        "run_id": run_id,
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    store.put_bytes(key, json.dumps(verdict, sort_keys=True).encode())


def read_verdict(store: ObjectStore, spec: UseCaseSpec, day: str) -> dict[str, Any]:
    """A day's recorded verdict (empty if none was recorded)."""
    key = verdict_key(spec, day)
    return json.loads(store.get_bytes(key)) if store.exists(key) else {}


def usable_days(
    store: ObjectStore, spec: UseCaseSpec, days: list[str]
) -> tuple[list[str], dict[str, str]]:
    """The days whose raw and clean checks passed, and why each other day is excluded."""
    usable, excluded = [], {}
    for day in days:
        verdict = read_verdict(store, spec, day)
        problems = [
            f"{stage}: {', '.join(f'{k} ({v})' for k, v in verdict[stage]['failed'].items())}"
            for stage in ("raw", "clean")
            if stage in verdict and not verdict[stage]["passed"]
        ]
        missing = [stage for stage in ("raw", "clean") if stage not in verdict]
        if problems:
            excluded[day] = "; ".join(problems)
        elif missing:
            excluded[day] = f"no {' or '.join(missing)} quality verdict"
        else:
            usable.append(day)
    return usable, excluded
