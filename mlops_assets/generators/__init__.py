"""Synthetic data generators: daily batches for a use case, with optional drift.

A generator turns ``(n_rows, day, seed)`` into a reproducible frame shaped like the use case's
real source file. The registry maps a spec's ``generator`` name to its implementation and imports
that implementation only when it is asked for, so importing this package stays cheap.

Batches are iid samples by default. Real files are ordered (by species, store, date), so a day's
batch cut from one in file order holds a few groups only, and a column missing for whole groups
(a mushroom species without a known spore print) is then missing for a whole day. The
``grouped`` layout (:class:`NonIid`) produces such batches: each day draws from a few groups,
rows ordered by group. Each generator says what its groups are.
"""

from __future__ import annotations

import datetime as dt
import importlib
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import pandas as pd

__all__ = [
    "DriftConfig",
    "Generator",
    "Layout",
    "NonIid",
    "available_generators",
    "batch_path",
    "day_groups",
    "get_generator",
    "grouped_rows",
    "resolve_layout",
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


@dataclass(frozen=True)
class NonIid:
    """A non-iid layout: each day's batch comes from a few groups, its rows ordered by group.

    Attributes:
        min_groups: Fewest groups a day draws from.
        max_groups: Most groups a day draws from (capped by the number of groups there are).
    """

    min_groups: int = 1
    max_groups: int = 3

    def __post_init__(self) -> None:
        if not 1 <= self.min_groups <= self.max_groups:
            raise ValueError(
                f"need 1 <= min_groups <= max_groups, got {self.min_groups}, {self.max_groups}"
            )


Layout = Literal["iid", "grouped"] | NonIid
"""``"iid"`` (the default), ``"grouped"`` (:class:`NonIid` with its defaults) or a NonIid."""


def resolve_layout(layout: Layout | None) -> NonIid | None:
    """The non-iid layout asked for, or ``None`` for iid batches.

    Raises:
        ValueError: The layout is not one of :data:`Layout`.
    """
    if layout is None or layout == "iid":
        return None
    if layout == "grouped":
        return NonIid()
    if isinstance(layout, NonIid):
        return layout
    raise ValueError(f"unknown layout {layout!r} (use 'iid', 'grouped' or a NonIid)")


def day_index(day: dt.date, stream: int | None) -> int:
    """What a day's draws are seeded by: its index in a run when given, else its date.

    A demo or test that numbers its days draws the same batches whatever the calendar date
    (the demo's days end on the day it runs).
    """
    return int(stream) if stream is not None else day.toordinal()


def day_groups(
    layout: NonIid,
    n_groups: int,
    day: dt.date,
    seed: int,
    name: str,
    weights: np.ndarray | None = None,
    stream: int | None = None,
) -> np.ndarray:
    """The indices of the groups a day's batch draws from, sorted.

    Drawn from a stream of their own, so the iid draws of a generator are untouched by the
    layout's existence; ``weights`` make common groups (a big outlet) likelier to be drawn.
    """
    rng = np.random.default_rng(
        [int(seed), day_index(day, stream), zlib.crc32(f"{name}:groups".encode())]
    )
    count = int(rng.integers(layout.min_groups, layout.max_groups + 1))
    count = max(1, min(count, n_groups))
    p = None if weights is None else np.asarray(weights, dtype=float) / np.sum(weights)
    return np.sort(rng.choice(n_groups, size=count, replace=False, p=p))


def grouped_rows(
    draw: Callable[[int, int], pd.DataFrame],
    group_of: Callable[[pd.DataFrame], np.ndarray],
    chosen: np.ndarray,
    n_rows: int,
    max_rounds: int = 50,
) -> pd.DataFrame:
    """``n_rows`` iid rows whose group is one of ``chosen``, ordered by group.

    For a generator whose groups are not an input of its draws (an age band follows from the
    obesity level drawn first): iid pools are drawn (``draw(size, round)``) and filtered, which
    keeps every distribution conditional on the group as it is. After ``max_rounds`` pools the
    rows found are returned, possibly fewer than asked.
    """
    kept: list[pd.DataFrame] = []
    found = 0
    for round_ in range(max_rounds):
        if found >= n_rows:
            break
        pool = draw(max(4 * n_rows, 200), round_)
        inside = pool[np.isin(group_of(pool), chosen)]
        kept.append(inside)
        found += len(inside)
    rows = pd.concat(kept, ignore_index=True).iloc[:n_rows] if kept else pd.DataFrame()
    if rows.empty:
        return rows.reset_index(drop=True)
    order = np.argsort(group_of(rows), kind="stable")
    return rows.iloc[order].reset_index(drop=True)


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
        layout: Layout = "iid",
        stream: int | None = None,
    ) -> pd.DataFrame:
        """One day's batch.

        Args:
            n_rows: Number of rows.
            day: The day the batch belongs to; different days give different rows.
            seed: Base seed; the same ``(n_rows, day, seed, drift)`` gives an identical frame.
            drift: Optional change of feature distributions or of the target relation.
            stream: The day's index in a run: seeds the day's draws instead of its date, so a
                run's batches do not depend on the calendar (see :func:`day_index`).
            layout: ``"iid"`` rows, or ``"grouped"``/:class:`NonIid`: a few groups a day, rows
                ordered by group.

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
