"""The promotion gate: a challenger replaces the champion only if it is better by the margin.

Both are scored on the same held-out rows. The alias is moved only if the champion is still
the one that was scored, so a concurrent promotion is never overwritten.

Given the trivial baseline's score on the same rows (:mod:`mlops_assets.training.baseline`)
and the bootstrap interval of the challenger's improvement on it, the gate also has a floor:
every challenger, the first included, must beat the baseline by the margin and beyond noise
(the interval's lower bound above zero). A model fitted to labels unrelated to its features
scores about as well as the class prior, sometimes a little better by chance; it must never
become champion just because there was none.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from mlops_assets.metrics import improvement


@dataclass(frozen=True)
class Decision:
    """The gate's verdict with everything needed to explain it."""

    promote: bool
    reason: str
    metric: str
    challenger_version: str
    challenger_score: float
    incumbent_version: str | None
    incumbent_score: float | None
    improvement: float | None
    margin: float
    baseline_name: str | None = None
    baseline_score: float | None = None
    baseline_improvement: float | None = None
    baseline_low: float | None = None
    baseline_high: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """A plain mapping for metadata and tags."""
        return asdict(self)


def decide(
    metric: str,
    margin: float,
    challenger_version: str,
    challenger_score: float,
    incumbent_version: str | None,
    incumbent_score: float | None,
    *,
    baseline_score: float | None = None,
    baseline_name: str | None = None,
    baseline_interval: tuple[float, float] | None = None,
    baseline_level: float = 0.95,
) -> Decision:
    """Compare the challenger with the baseline floor, then with the incumbent.

    Args:
        metric: The primary metric.
        margin: Relative improvement the challenger needs (over the incumbent and the baseline).
        challenger_version: Registry version of the challenger.
        challenger_score: The challenger's score on the test rows.
        incumbent_version: The champion's version, ``None`` when there is none.
        incumbent_score: The champion's score on the same rows.
        baseline_score: The trivial baseline's score on the same rows; ``None``: no floor
            (the gate behaves as it did without one).
        baseline_name: What the baseline is (``"class prior"``), for the reason.
        baseline_interval: The bootstrap interval (low, high) of the challenger's relative
            improvement on the baseline (:func:`~mlops_assets.metrics.paired_bootstrap`);
            ``None``: the margin alone decides. A NaN lower bound (no resample could be
            scored) counts as noise.
        baseline_level: The interval's confidence level (for the reason).

    Returns:
        The verdict, its reason and the scores it compared.
    """
    common: dict[str, Any] = dict(
        metric=metric,
        challenger_version=challenger_version,
        challenger_score=challenger_score,
        incumbent_version=incumbent_version,
        incumbent_score=incumbent_score,
        margin=margin,
    )
    floor = ""
    if baseline_score is not None:
        name = baseline_name or "baseline"
        gain = improvement(metric, challenger_score, baseline_score)
        low, high = baseline_interval if baseline_interval is not None else (None, None)
        common.update(
            baseline_name=name,
            baseline_score=baseline_score,
            baseline_improvement=gain,
            baseline_low=low,
            baseline_high=high,
        )
        interval = (
            f", {baseline_level:.0%} interval [{low:.1%}, {high:.1%}]" if low is not None else ""
        )
        evidence = f"{name} {metric}={baseline_score:.4f}"
        short = gain < margin
        noisy = low is not None and not low > 0
        if (short or noisy) and incumbent_version != challenger_version:
            how = "beyond noise" if noisy else f"by the margin {margin:.2%}"
            stays = (
                f"champion v{incumbent_version} stays"
                if incumbent_version is not None
                else "no champion"
            )
            reason = (
                f"challenger v{challenger_version} {metric}={challenger_score:.4f} does not beat "
                f"the {evidence} {how} (improvement {gain:.2%}{interval}); {stays}"
            )
            return Decision(
                promote=False,
                reason=reason,
                improvement=improvement(metric, challenger_score, incumbent_score)
                if incumbent_score is not None
                else None,
                **common,
            )
        floor = f"; above the {evidence} (improvement {gain:.2%}{interval})"
    if incumbent_version is None or incumbent_score is None:
        return Decision(
            promote=True,
            reason="no champion yet: the first model becomes champion" + floor,
            improvement=None,
            **common,
        )
    if incumbent_version == challenger_version:
        return Decision(
            promote=False,
            reason=f"version {challenger_version} is already champion",
            improvement=0.0,
            **common,
        )
    gain = improvement(metric, challenger_score, incumbent_score)
    if gain >= margin:
        reason = (
            f"challenger v{challenger_version} {metric}={challenger_score:.4f} beats champion "
            f"v{incumbent_version} {metric}={incumbent_score:.4f} by {gain:.2%} "
            f"(margin {margin:.2%})"
        )
        return Decision(promote=True, reason=reason + floor, improvement=gain, **common)
    reason = (
        f"challenger v{challenger_version} {metric}={challenger_score:.4f} does not beat champion "
        f"v{incumbent_version} {metric}={incumbent_score:.4f} by the margin {margin:.2%} "
        f"(improvement {gain:.2%})"
    )
    return Decision(promote=False, reason=reason + floor, improvement=gain, **common)


class ConcurrentPromotionError(RuntimeError):
    """The champion moved while this run was evaluating it; nothing was changed."""
