"""Synthetic data generators: daily batches for a use case, with optional drift.

A generator turns ``(n_rows, day, seed)`` into a reproducible frame shaped like the use case's
real source file. The registry maps a spec's ``generator`` name to its implementation and imports
that implementation only when it is asked for, so importing this package stays cheap.
"""

from __future__ import annotations

import datetime as dt
import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import pandas as pd

__all__ = [
    "DriftConfig",
    "Generator",
    "available_generators",
    "batch_path",
    "get_generator",
    "shift_numeric",
    "write_batch",
]


@dataclass(frozen=True)
class DriftConfig:
    """A change of the data a generator produces, to exercise monitoring and retraining.

    Attributes:
        shift_features: Numeric feature name -> shift of its mean, in standard deviations of the
            undrifted values (``{"Item_MRP": 1.0}`` adds one standard deviation). Rows derived
            from the features (the target) follow the shifted values: a covariate shift.
        target_scale: Factor applied to the target after it is derived from the features: a
            changed relation between features and target (concept drift). ``1.0`` is none.
    """

    shift_features: dict[str, float] = field(default_factory=dict)
    target_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.target_scale <= 0:
            raise ValueError(f"target_scale must be positive, got {self.target_scale}")

    @property
    def is_identity(self) -> bool:
        """Whether this drift changes nothing."""
        return self.target_scale == 1.0 and not any(self.shift_features.values())


@runtime_checkable
class Generator(Protocol):
    """Produces one day's batch of a use case."""

    name: str

    def generate(
        self,
        n_rows: int,
        day: dt.date,
        seed: int,
        drift: DriftConfig | None = None,
    ) -> pd.DataFrame:
        """One day's batch.

        Args:
            n_rows: Number of rows.
            day: The day the batch belongs to; different days give different rows.
            seed: Base seed; the same ``(n_rows, day, seed, drift)`` gives an identical frame.
            drift: Optional change of feature distributions or of the target relation.

        Returns:
            The batch with the columns of the use case's real source file, in its order.
        """
        ...


# name -> "module:attribute" of a zero-argument factory (a class); imported on first use.
_REGISTRY: dict[str, str] = {
    "bigmart_sales": "mlops_assets.generators.bigmart_sales:BigMartSalesGenerator",
    "loan_approval": "mlops_assets.generators.loan_approval:LoanApprovalGenerator",
    "m5_sales": "mlops_assets.generators.m5_sales:M5SalesGenerator",
    "mushroom": "mlops_assets.generators.mushroom:MushroomGenerator",
    "obesity": "mlops_assets.generators.obesity:ObesityGenerator",
}


def available_generators() -> list[str]:
    """Names of the registered generators."""
    return sorted(_REGISTRY)


def get_generator(name: str) -> Generator:
    """The generator registered under ``name``.

    Args:
        name: A spec's ``generator`` value, e.g. ``"bigmart_sales"``.

    Returns:
        A new generator instance.

    Raises:
        KeyError: No generator has that name.
    """
    try:
        target = _REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"unknown generator `{name}` (available: {available_generators()})"
        ) from None
    module_name, _, attribute = target.partition(":")
    factory = getattr(importlib.import_module(module_name), attribute)
    return factory()


def shift_numeric(
    frame: pd.DataFrame, shifts: Mapping[str, float], allowed: list[str] | None = None
) -> pd.DataFrame:
    """Shift numeric columns' means by a number of their standard deviations.

    Args:
        frame: Rows to shift; not modified.
        shifts: Column -> shift in standard deviations of the column's present values.
        allowed: Columns that may be shifted; ``None`` means any numeric column.

    Returns:
        A copy of ``frame`` with the shifted columns (missing values stay missing).

    Raises:
        KeyError: A column is unknown, not numeric or not allowed.
    """
    shifted = frame.copy()
    candidates = (
        [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]
        if allowed is None
        else list(allowed)
    )
    for name, factor in shifts.items():
        if name not in candidates or name not in frame.columns:
            raise KeyError(f"cannot shift `{name}` (shiftable columns: {sorted(candidates)})")
        if not factor:
            continue
        values = shifted[name].astype("float64")
        std = float(values.std(skipna=True))
        if std > 0:
            shifted[name] = values + factor * std
    return shifted


def batch_path(landing_dir: Path, use_case: str, day: dt.date, name: str = "batch.csv") -> Path:
    """Where a batch lands: ``<landing_dir>/<use_case>/<YYYY-MM-DD>/<name>``."""
    return Path(landing_dir) / use_case / day.isoformat() / name


def write_batch(
    frame: pd.DataFrame,
    landing_dir: Path,
    use_case: str,
    day: dt.date,
    name: str = "batch.csv",
) -> Path:
    """Write a batch as CSV into the landing layout, creating folders as needed.

    Args:
        frame: The batch; missing values are written as empty fields.
        landing_dir: Root of the landing zone.
        use_case: The use case (the spec's name).
        day: The landing day of the batch.
        name: File name inside the day's folder.

    Returns:
        The path of the written file.
    """
    path = batch_path(landing_dir, use_case, day, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    frame.to_csv(tmp, index=False)
    tmp.replace(path)
    return path
