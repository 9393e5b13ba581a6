"""A reference profile per model version: what its training rows looked like, small and in JSON.

Drift and shift warnings compare a day's batch with the rows the *serving* model learnt from.
Keeping those rows around (or re-reading the latest training set, which may belong to a model
that was never promoted) is heavy and wrong; a profile is a few kilobytes logged with the model
version and compared with any later batch:

- numeric and integer features: the decile edges and the share of rows in each bin (the
  binning of :func:`~mlops_assets.monitoring.drift.numeric_psi`, so PSI against a profile is
  PSI against the rows it was built from), the null rate, min, max and mean;
- categorical features: the share of each of the 50 most frequent values, the share of all
  others and the null rate;
- date features: the null rate and the range;
- the row count and the target's distribution (mean and spread, or class shares).

Shares are of all rows, missing ones included, so a feature's bins (or values, other share)
and its null rate sum to one.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlops_assets import names
from mlops_assets.features.derived import group_stats, with_derived
from mlops_assets.features.quality import WARN, CheckOutcome
from mlops_assets.monitoring.drift import (
    MISSING,
    ColumnDrift,
    as_numbers,
    binned_shares,
    category_shares,
    decile_edges,
    psi,
    shares_psi,
)
from mlops_assets.registry.ledger import champion_on, read_ledger
from mlops_assets.specs.model import ColumnSpec, UseCaseSpec
from mlops_assets.storage.objectstore import ObjectStore

PROFILE_VERSION = 1
TOP_CATEGORIES = 50
"""Categorical values a profile lists; the rest share one ``other`` share."""
OTHER = "__other__"
"""The level values a profile does not list fall into when compared with it."""
UNSEEN_LISTED = 20
"""Unseen categories a comparison names (the most frequent first)."""


def _number(value: Any) -> float | None:
    """A JSON-safe float: ``None`` for missing or non-finite values."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _null_rate(values: pd.Series) -> float:
    return float(values.isna().mean()) if len(values) else 0.0


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    """A column of ``frame``, or all missing when the frame lacks it (as model input does)."""
    if name in frame.columns:
        return frame[name]
    return pd.Series(np.nan, index=frame.index, dtype=float)


def numeric_profile(values: pd.Series) -> dict[str, Any]:
    """Decile bins, null rate and range of a numeric column."""
    numbers = as_numbers(values)
    present = numbers.dropna()
    edges = decile_edges(numbers)
    return {
        "kind": "numeric",
        "null_rate": _null_rate(numbers),
        "edges": [float(e) for e in edges],
        "shares": [float(s) for s in binned_shares(numbers, edges)[:-1]],
        "min": _number(present.min()) if len(present) else None,
        "max": _number(present.max()) if len(present) else None,
        "mean": _number(present.mean()) if len(present) else None,
    }


def categorical_profile(values: pd.Series, top: int = TOP_CATEGORIES) -> dict[str, Any]:
    """Shares of the ``top`` most frequent values, of all others, and the null rate."""
    shares = category_shares(values)
    null_rate = float(shares.get(MISSING, 0.0))
    shares = shares.drop(MISSING, errors="ignore")
    kept = shares.iloc[:top]
    return {
        "kind": "categorical",
        "null_rate": null_rate,
        "shares": {str(k): float(v) for k, v in kept.items()},
        "other_share": float(shares.iloc[top:].sum()),
        "distinct": int(len(shares)),
    }


def date_profile(values: pd.Series) -> dict[str, Any]:
    """Null rate and range of a date column (PSI of dates would only measure time passing)."""
    dates = pd.to_datetime(values, errors="coerce")
    present = dates.dropna()
    return {
        "kind": "date",
        "null_rate": _null_rate(dates),
        "min": present.min().isoformat() if len(present) else None,
        "max": present.max().isoformat() if len(present) else None,
    }


def feature_profile(column: ColumnSpec, values: pd.Series) -> dict[str, Any]:
    """The profile of one feature, by its type."""
    if column.type in {"numeric", "integer"}:
        return numeric_profile(values)
    if column.type == "date":
        return date_profile(values)
    return categorical_profile(values)


def target_profile(spec: UseCaseSpec, frame: pd.DataFrame) -> dict[str, Any]:
    """The distribution of the labelled target: class shares, or mean, spread and range."""
    values = _column(frame, spec.target.name)
    labelled = values[values.notna()]
    if spec.is_classification:
        shares = labelled.astype(str).value_counts(normalize=True)
        classes = list(spec.target.classes or shares.index)
        return {
            "kind": "classes",
            "labelled": int(len(labelled)),
            "shares": {c: float(shares.get(c, 0.0)) for c in classes},
        }
    numbers = as_numbers(labelled).dropna()
    present = len(numbers) > 0
    return {
        "kind": "numeric",
        "labelled": int(len(numbers)),
        "mean": _number(numbers.mean()) if present else None,
        "std": _number(numbers.std(ddof=0)) if present else None,
        "min": _number(numbers.min()) if present else None,
        "max": _number(numbers.max()) if present else None,
    }


def profiled(spec: UseCaseSpec) -> list[ColumnSpec]:
    """The features a profile describes: all but group statistics.

    A group statistic is fitted inside the model and is a function of its group column, which
    is profiled.
    """
    fitted = {f.name for f in group_stats(spec)}
    return [c for c in spec.features if c.name not in fitted]


def build_profile(spec: UseCaseSpec, train: pd.DataFrame) -> dict[str, Any]:
    """The reference profile of a model version's training rows (JSON-serialisable, small).

    Args:
        spec: The use case (a segment's view profiles the segment's features).
        train: The rows the model learnt from, as clean data (or model input).

    Returns:
        A plain mapping: ``version``, ``rows``, ``features`` (name -> feature profile) and
        ``target``; every value is a JSON type, missing numbers ``None``.
    """
    train = with_derived(train, spec)
    return {
        "version": PROFILE_VERSION,
        "use_case": spec.name,
        "rows": int(len(train)),
        "features": {c.name: feature_profile(c, _column(train, c.name)) for c in profiled(spec)},
        "target": target_profile(spec, train),
    }


# ---------------------------------------------------------------- comparing a batch


@dataclass(frozen=True)
class FeatureShift:
    """How one feature of a batch differs from the profile.

    Attributes:
        column: The feature.
        kind: ``numeric``, ``categorical`` or ``date``.
        psi: PSI of the batch against the profile (``None`` for dates).
        null_rate_reference: Share of missing values in the profiled rows.
        null_rate_current: Share of missing values in the batch.
        unseen_categories: Batch values the profile does not list, most frequent first (at
            most 20). A profile with an ``other`` share may have seen them among its rare
            values.
        unseen_share: Share of the batch's rows with such a value.
        below_min_share: Share of the batch's rows below the profile's minimum (numbers and
            dates).
        above_max_share: Share of the batch's rows above the profile's maximum.
    """

    column: str
    kind: str
    psi: float | None
    null_rate_reference: float
    null_rate_current: float
    unseen_categories: list[str] = field(default_factory=list)
    unseen_share: float = 0.0
    below_min_share: float = 0.0
    above_max_share: float = 0.0

    @property
    def null_rate_shift(self) -> float:
        """Change of the null rate, batch minus profile (positive: more missing)."""
        return self.null_rate_current - self.null_rate_reference

    @property
    def out_of_range_share(self) -> float:
        """Share of the batch's rows outside the profile's range."""
        return self.below_min_share + self.above_max_share

    def as_dict(self) -> dict[str, Any]:
        """A plain mapping for metadata, derived fields included."""
        return {
            **asdict(self),
            "null_rate_shift": self.null_rate_shift,
            "out_of_range_share": self.out_of_range_share,
        }


def profile_numeric_psi(feature: dict[str, Any], current: pd.Series) -> float:
    """PSI of a numeric batch column against a numeric feature profile."""
    if all(share == 0 for share in feature["shares"]):
        return 0.0  # nothing was present in the reference, as numeric_psi has it
    edges = np.asarray(feature["edges"], dtype=float)
    reference = np.append(np.asarray(feature["shares"], dtype=float), feature["null_rate"])
    return psi(reference, binned_shares(current, edges))


def profile_categorical_psi(feature: dict[str, Any], current: pd.Series) -> float:
    """PSI of a categorical batch column against a categorical feature profile.

    Against a profile that lists every value it saw, PSI is categorical PSI against the rows
    themselves; against one with an ``other`` share, values it does not list count as that
    share's level.
    """
    reference = pd.Series({**feature["shares"], MISSING: feature["null_rate"]}, dtype=float)
    shares = category_shares(current)
    if feature["other_share"] > 0:
        unlisted = ~shares.index.isin(reference.index)
        shares = pd.concat([shares[~unlisted], pd.Series({OTHER: shares[unlisted].sum()})])
        reference[OTHER] = feature["other_share"]
    return shares_psi(reference, shares)


def _range_shares(feature: dict[str, Any], numbers: pd.Series, n: int) -> tuple[float, float]:
    present = numbers.dropna()
    low, high = feature.get("min"), feature.get("max")
    if not n or low is None or high is None:
        return 0.0, 0.0
    return float((present < low).sum() / n), float((present > high).sum() / n)


def feature_shift(name: str, feature: dict[str, Any], current: pd.Series) -> FeatureShift:
    """Compare one batch column with its feature profile."""
    n = len(current)
    kind = feature["kind"]
    if kind == "numeric":
        numbers = as_numbers(current)
        below, above = _range_shares(feature, numbers, n)
        return FeatureShift(
            name,
            kind,
            profile_numeric_psi(feature, current),
            feature["null_rate"],
            _null_rate(numbers),
            below_min_share=below,
            above_max_share=above,
        )
    if kind == "date":
        dates = pd.to_datetime(current, errors="coerce")
        stamps = pd.Series(
            dates.to_numpy(dtype="datetime64[ns]").astype("int64"), index=dates.index
        )
        stamps = stamps.where(dates.notna())
        bounds = {
            key: pd.Timestamp(feature[key]).value if feature[key] else None
            for key in ("min", "max")
        }
        below, above = _range_shares(bounds, stamps, n)
        return FeatureShift(
            name,
            kind,
            None,
            feature["null_rate"],
            _null_rate(dates),
            below_min_share=below,
            above_max_share=above,
        )
    shares = category_shares(current).drop(MISSING, errors="ignore")
    unseen = shares[~shares.index.isin(list(feature["shares"]))]
    return FeatureShift(
        name,
        kind,
        profile_categorical_psi(feature, current),
        feature["null_rate"],
        _null_rate(current),
        unseen_categories=[str(v) for v in unseen.index[:UNSEEN_LISTED]],
        unseen_share=float(unseen.sum()),
    )


def compare(
    profile: dict[str, Any], current: pd.DataFrame, spec: UseCaseSpec
) -> list[FeatureShift]:
    """Per feature of ``spec``: PSI, null-rate shift, unseen categories, values out of range.

    Args:
        profile: A profile from :func:`build_profile` (possibly read back from JSON).
        current: The batch to compare, as clean data.
        spec: The use case; its features that the profile lacks are left out.

    Returns:
        One :class:`FeatureShift` per profiled feature of the spec, in spec order.
    """
    features = profile.get("features", {})
    current = with_derived(current, spec)
    return [
        feature_shift(c.name, features[c.name], _column(current, c.name))
        for c in profiled(spec)
        if c.name in features
    ]


def profile_drifts(
    profile: dict[str, Any], current: pd.DataFrame, spec: UseCaseSpec
) -> list[ColumnDrift]:
    """The batch's drift against a profile in the form of :func:`~drift.column_drift`.

    For the drift report and the retraining policy; KS statistics need the reference rows
    themselves, so they are left empty.
    """
    return [
        ColumnDrift(shift.column, shift.kind, shift.psi)
        for shift in compare(profile, current, spec)
        if shift.psi is not None
    ]


# ---------------------------------------------------------------- stored with the version


def prediction_profile(spec: UseCaseSpec, predictions: np.ndarray) -> dict[str, Any]:
    """The distribution of a model's predictions on its training rows (prediction drift)."""
    values = pd.Series(predictions)
    if spec.is_classification:
        return categorical_profile(values.astype(str))
    return numeric_profile(pd.to_numeric(values, errors="coerce"))


def profile_key(view: UseCaseSpec, version: str) -> str:
    """Object key of a model version's profile."""
    return f"{names.profiles_prefix(view.name)}{view.registered_model_name()}/v{version}.json"


def write_profile(
    store: ObjectStore, view: UseCaseSpec, version: str, profile: dict[str, Any]
) -> str:
    """Store a version's profile beside the asset tables; returns its key."""
    key = profile_key(view, version)
    store.put_bytes(key, json.dumps(profile, sort_keys=True).encode())
    return key


def read_profile(store: ObjectStore, view: UseCaseSpec, version: str) -> dict[str, Any] | None:
    """A version's stored profile (``None`` for a version registered without one)."""
    key = profile_key(view, version)
    return json.loads(store.get_bytes(key)) if store.exists(key) else None


def prediction_psi(profile: dict[str, Any], predictions: np.ndarray) -> float | None:
    """PSI of predictions against the profile's predictions on the training rows."""
    reference = profile.get("prediction")
    if not reference:
        return None
    values = pd.Series(predictions)
    if reference["kind"] == "categorical":
        return profile_categorical_psi(reference, values.astype(str))
    return profile_numeric_psi(reference, pd.to_numeric(values, errors="coerce"))


@dataclass(frozen=True)
class ServingProfile:
    """A slot's champion as of a day, and the profile of its training rows."""

    view: UseCaseSpec
    version: str
    profile: dict[str, Any]


def serving_profiles(store: ObjectStore, spec: UseCaseSpec, day: str) -> list[ServingProfile]:
    """Each slot's champion at the end of ``day`` (per the ledger) that has a stored profile."""
    found = []
    for view in spec.segment_specs():
        version = champion_on(read_ledger(store, view), day)
        profile = read_profile(store, view, version) if version is not None else None
        if version is not None and profile is not None:
            found.append(ServingProfile(view, version, profile))
    return found


def shift_warning(
    serving: list[ServingProfile], clean: pd.DataFrame, max_psi: float
) -> CheckOutcome:
    """A warning when a batch differs from what the serving champions were trained on.

    PSI above ``max_psi``, values the champion never saw (a category outside its profile, a
    number outside its training range) and null-rate shifts are reported per feature; a day is
    never rejected for them (they are what monitoring and retraining are for).
    """
    if not serving:
        return CheckOutcome("shifts", True, "no serving champion profile yet", severity=WARN)
    shifts: dict[str, dict[str, Any]] = {}
    for entry in serving:
        for shift in compare(entry.profile, clean, entry.view):
            drifted = shift.psi is not None and shift.psi > max_psi
            unseen = shift.unseen_share > 0 or shift.out_of_range_share > 0
            if drifted or unseen or abs(shift.null_rate_shift) > 0.5:
                shifts[shift.column] = {
                    "psi": None if shift.psi is None else round(shift.psi, 4),
                    "null_rate_shift": round(shift.null_rate_shift, 4),
                    "unseen_share": round(shift.unseen_share, 4),
                    "out_of_range_share": round(shift.out_of_range_share, 4),
                    "unseen_categories": shift.unseen_categories[:5],
                }
    versions = {e.view.registered_model_name(): e.version for e in serving}
    return CheckOutcome(
        "shifts",
        not shifts,
        f"shifts against the serving champion in {sorted(shifts)} (a warning)" if shifts else "ok",
        {"max_psi": max_psi, "champions": versions, "shifted": shifts},
        severity=WARN,
    )
