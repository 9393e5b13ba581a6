"""The promotion gate: a challenger replaces the champion only if it is better by the margin.

Both are scored on the same held-out rows. The alias is moved only if the champion is still
the one that was scored, so a concurrent promotion is never overwritten.
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
) -> Decision:
    """Compare challenger and incumbent on the primary metric."""
    common = dict(
        metric=metric,
        challenger_version=challenger_version,
        challenger_score=challenger_score,
        incumbent_version=incumbent_version,
        incumbent_score=incumbent_score,
        margin=margin,
    )
    if incumbent_version is None or incumbent_score is None:
        return Decision(
            promote=True,
            reason="no champion yet: the first model becomes champion",
            improvement=None,
            **common,  # type: ignore[arg-type]
        )
    if incumbent_version == challenger_version:
        return Decision(
            promote=False,
            reason=f"version {challenger_version} is already champion",
            improvement=0.0,
            **common,  # type: ignore[arg-type]
        )
    gain = improvement(metric, challenger_score, incumbent_score)
    if gain >= margin:
        reason = (
            f"challenger v{challenger_version} {metric}={challenger_score:.4f} beats champion "
            f"v{incumbent_version} {metric}={incumbent_score:.4f} by {gain:.2%} "
            f"(margin {margin:.2%})"
        )
        return Decision(promote=True, reason=reason, improvement=gain, **common)  # type: ignore[arg-type]
    reason = (
        f"challenger v{challenger_version} {metric}={challenger_score:.4f} does not beat champion "
        f"v{incumbent_version} {metric}={incumbent_score:.4f} by the margin {margin:.2%} "
        f"(improvement {gain:.2%})"
    )
    return Decision(promote=False, reason=reason, improvement=gain, **common)  # type: ignore[arg-type]


class ConcurrentPromotionError(RuntimeError):
    """The champion moved while this run was evaluating it; nothing was changed."""
