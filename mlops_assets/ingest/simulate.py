"""Land the next day's generated batch, optionally drifted (the ``simulate_new_day`` job).

For demos and soak tests: it writes into the landing zone exactly as a real source would, so
the landing sensor, checks, monitoring and the retraining policy see nothing special.
"""

import datetime as dt
import io
from dataclasses import dataclass, field

from mlops_assets.generators import DriftConfig, get_generator
from mlops_assets.ingest.days import parse_day, require_day, today
from mlops_assets.ingest.landing import LandingZone
from mlops_assets.specs.model import UseCaseSpec


@dataclass(frozen=True)
class SimulateSettings:
    """Which day to generate and how to drift it (the simulate job's config)."""

    rows: int = 500
    seed: int = 7
    day: str | None = None  # default: the day after the newest landed day, or today
    shift_features: dict[str, float] = field(default_factory=dict)
    target_scale: float = 1.0
    stream: int | None = None  # the day's index in a run: seeds the draw (default: the date)


def next_day(landing: LandingZone, spec: UseCaseSpec) -> str:
    """The day after the newest landed day, or today when nothing landed yet."""
    days = [d for d in landing.files_by_day(spec.name) if parse_day(d)]
    if not days:
        return today().isoformat()
    return (dt.date.fromisoformat(max(days)) + dt.timedelta(days=1)).isoformat()


def land_generated(
    landing: LandingZone, spec: UseCaseSpec, config: SimulateSettings
) -> tuple[str, str, int]:
    """Generate and land one batch; returns ``(day, key, rows)``."""
    day = config.day or next_day(landing, spec)
    drift = DriftConfig(dict(config.shift_features), config.target_scale)
    frame = get_generator(spec.generator or spec.name).generate(
        config.rows,
        require_day(day, "day to simulate"),
        config.seed,
        None if drift.is_identity else drift,
        stream=config.stream,
    )
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    key = landing.land(spec.name, day, "generated.csv", buffer.getvalue().encode())
    return day, key, len(frame)
