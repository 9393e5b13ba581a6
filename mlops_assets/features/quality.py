"""Data-quality gates on each day's batch, and the per-day verdict training honours.

Real batches are not iid samples: a file cut into days in its own order (by species, by store,
by date) leaves whole days without some column's values, or with a few categories only. So the
gates block what breaks the contract, and *warn* about what is merely different:

- **blocking** (a failed check stops the rest of its run and keeps the day out of training):
  a missing id, feature (unless ``optional``) or target column; rows without a required id; no
  labelled row; values that cannot be read as the column's type, or outside the spec's hard
  domains (ranges, closed category sets), above ``max_invalid_fraction`` (per column, or the
  spec's); a required (``nullable: false``) column with missing values; too few rows;
- **warnings** (reported, never a reason to reject the day): a nullable column's missing share
  above ``max_null_fraction``; a batch's shifts against the serving champion's reference profile
  (PSI, null rate, unseen categories, numbers outside the trained range).

A blocking asset check stops downstream steps only in its own run, so a later retraining run
would happily read a day whose checks failed. Each day therefore gets a verdict object next to
its tables (``<use_case>/quality/<day>.json``), with the digest of the spec it was judged under;
the splits read only days whose raw and clean checks passed. A rejected day stays stored and
inspectable; ``mlops refresh`` judges it again once the spec has changed.
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
    "schema": "Every id, feature (unless optional) and target column of the spec is present.",
    "row_count": "The batch has at least the spec's min_rows_per_batch rows.",
}
CLEAN_CHECKS = {
    "ids": "Rows without a required id (they cannot be split or joined to labels) stay under "
    "max_invalid_fraction.",
    "labels": "The batch has labelled rows (a readable target).",
    "types": "Values that cannot be read as the column's type stay under max_invalid_fraction.",
    "required": "Columns marked `nullable: false` have no missing value.",
    "value_domains": "Values outside the spec's ranges and closed category sets stay under "
    "max_invalid_fraction.",
}
CLEAN_WARNINGS = {
    "null_rates": "A nullable column's missing share above max_null_fraction (a warning: a day "
    "of a real file may lack a column's values entirely).",
    "shifts": "The batch against the serving champion's reference profile: PSI above the "
    "policy's max_psi, or values the champion never saw (a warning).",
}
ERROR, WARN = "error", "warn"


@dataclass
class CheckOutcome:
    """One check's verdict with the numbers behind it."""

    name: str
    passed: bool
    summary: str
    metadata: dict[str, Any] = field(default_factory=dict)
    severity: str = ERROR  # a failed "warn" check is reported, never a reason to reject


def raw_checks(raw: pd.DataFrame, spec: UseCaseSpec) -> list[CheckOutcome]:
    """Schema and row count of a raw batch."""
    required = [c.name for c in spec.input_columns if not c.optional] + [spec.target.name]
    missing = [name for name in required if name not in raw.columns]
    rows = len(raw)
    described = [f"{name} (the target)" if name == spec.target.name else name for name in missing]
    return [
        CheckOutcome(
            "schema",
            not missing,
            f"missing columns {described}" if missing else "all spec columns present",
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
    """The blocking checks of a cleaned batch: ids, labels, types, required values, domains."""
    rows_in = max(report.rows_in, 1)
    columns = {c.name: c for c in spec.input_columns}
    default = spec.max_invalid_fraction
    missing_ids = {
        k: v
        for k, v in report.missing_ids.items()
        if _fraction(v, rows_in) > columns[k].invalid_limit(default)
    }
    labelled = int(clean[spec.target.name].notna().sum()) if spec.target.name in clean else 0
    unreadable = {k: _fraction(v, rows_in) for k, v in report.invalid_values.items()}
    target_limit = default
    bad_types = {
        k: round(v, 4)
        for k, v in unreadable.items()
        if v > (columns[k].invalid_limit(default) if k in columns else target_limit)
    }
    required_missing = {
        c.name: int(clean[c.name].isna().sum())
        for c in spec.input_columns
        if not c.nullable and c.name in clean.columns and int(clean[c.name].isna().sum())
    }
    outside = {k: _fraction(v, len(clean)) for k, v in domain_violations(clean, spec).items()}
    bad_domains = {
        k: round(v, 4) for k, v in outside.items() if v > columns[k].invalid_limit(default)
    }
    examples = {k: report.invalid_examples.get(k, []) for k in sorted(bad_types)}
    shown = "; ".join(f"{k}: {', '.join(v)}" for k, v in examples.items() if v)
    return [
        CheckOutcome(
            "ids",
            not missing_ids,
            f"rows without a required id above the limit: {missing_ids}" if missing_ids else "ok",
            {"rows_without_id": missing_ids, "rows_in": report.rows_in},
        ),
        CheckOutcome(
            "labels",
            labelled > 0,
            "ok" if labelled else f"no row has a readable target `{spec.target.name}`",
            {"labelled_rows": labelled, "rows": len(clean)},
        ),
        CheckOutcome(
            "types",
            not bad_types,
            f"unreadable values above the limit in {sorted(bad_types)}"
            + (f" (e.g. {shown})" if shown else "")
            if bad_types
            else "ok",
            {
                "threshold": default,
                "unreadable_share": unreadable,
                "failing": bad_types,
                "examples": examples,
            },
        ),
        CheckOutcome(
            "required",
            not required_missing,
            f"missing values in required columns {required_missing}" if required_missing else "ok",
            {"missing": required_missing},
        ),
        CheckOutcome(
            "value_domains",
            not bad_domains,
            f"values outside the spec above the limit in {sorted(bad_domains)}"
            if bad_domains
            else "ok",
            {"threshold": default, "outside_share": outside, "failing": bad_domains},
        ),
    ]


def null_rate_warning(clean: pd.DataFrame, spec: UseCaseSpec) -> CheckOutcome:
    """A warning for nullable columns whose missing share is above their limit."""
    shares = {
        c.name: _fraction(int(clean[c.name].isna().sum()), len(clean))
        for c in spec.input_columns
        if c.nullable and c.name in clean.columns
    }
    high = {
        c.name: round(shares[c.name], 4)
        for c in spec.input_columns
        if c.name in shares and shares[c.name] > c.null_limit(spec.max_null_fraction)
    }
    return CheckOutcome(
        "null_rates",
        not high,
        f"many missing values in {sorted(high)} (a warning)" if high else "ok",
        {"threshold": spec.max_null_fraction, "null_share": shares, "high": high},
        severity=WARN,
    )


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
    """Record a stage's verdict; a new raw verdict clears the clean one (the day was re-read).

    Only blocking checks decide whether the day passed; warnings are recorded beside them.
    """
    key = verdict_key(spec, day)
    verdict: dict[str, Any] = {}
    if stage != "raw" and store.exists(key):
        verdict = json.loads(store.get_bytes(key))
    errors = [o for o in outcomes if o.severity == ERROR]
    verdict[stage] = {
        "passed": all(o.passed for o in errors),
        "failed": {o.name: o.summary for o in errors if not o.passed},
        "warnings": {o.name: o.summary for o in outcomes if o.severity == WARN and not o.passed},
        "spec_digest": spec.digest(),
        "run_id": run_id,
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    store.put_bytes(key, json.dumps(verdict, sort_keys=True).encode())


def read_verdict(store: ObjectStore, spec: UseCaseSpec, day: str) -> dict[str, Any]:
    """A day's recorded verdict (empty if none was recorded)."""
    key = verdict_key(spec, day)
    return json.loads(store.get_bytes(key)) if store.exists(key) else {}


def rejection(verdict: dict[str, Any]) -> str | None:
    """Why a verdict rejects its day (``None`` when it does not)."""
    problems = [
        f"{stage}: {', '.join(f'{k} ({v})' for k, v in verdict[stage]['failed'].items())}"
        for stage in ("raw", "clean")
        if stage in verdict and not verdict[stage]["passed"]
    ]
    return "; ".join(problems) or None


def usable_days(
    store: ObjectStore, spec: UseCaseSpec, days: list[str]
) -> tuple[list[str], dict[str, str]]:
    """The days whose raw and clean checks passed, and why each other day is excluded."""
    usable, excluded = [], {}
    for day in days:
        verdict = read_verdict(store, spec, day)
        problem = rejection(verdict)
        missing = [stage for stage in ("raw", "clean") if stage not in verdict]
        if problem:
            excluded[day] = problem
        elif missing:
            excluded[day] = f"no {' or '.join(missing)} quality verdict"
        else:
            usable.append(day)
    return usable, excluded


@dataclass(frozen=True)
class Rejected:
    """A day the gates rejected, why, and under which spec."""

    day: str
    reason: str
    spec_digest: str | None

    def stale(self, spec: UseCaseSpec) -> bool:
        """Whether the day was judged under another spec than the current one."""
        return self.spec_digest != spec.digest()


def rejected_days(store: ObjectStore, spec: UseCaseSpec) -> list[Rejected]:
    """Every day whose stored verdict rejects it, oldest first."""
    prefix = names.quality_prefix(spec.name)
    found = []
    for info in store.list(prefix):
        if not info.key.endswith(".json"):
            continue
        verdict = json.loads(store.get_bytes(info.key))
        reason = rejection(verdict)
        if reason:
            digests = {verdict[s].get("spec_digest") for s in ("raw", "clean") if s in verdict}
            digest = digests.pop() if len(digests) == 1 else None
            found.append(Rejected(info.key[len(prefix) : -len(".json")], reason, digest))
    return found
