"""``<use_case>__simulate_new_day``: land the next day's generated batch, optionally drifted.

For demos and soak tests: it writes into the landing zone exactly as a real source would, so
the landing sensor, checks, monitoring and the retraining policy see nothing special.
"""

import datetime as dt
import io

import dagster as dg
from pydantic import Field

from mlops_assets.ingest.landing import LandingZone, parse_day
from mlops_assets.partitions import today
from mlops_assets.specs.model import UseCaseSpec


class SimulateConfig(dg.Config):
    """Which day to generate and how to drift it."""

    rows: int = Field(default=500, gt=0, description="Rows in the generated batch.")
    seed: int = Field(default=7, description="Seed of the generator (same seed, same batch).")
    day: str | None = Field(
        default=None,
        description="Day to land (YYYY-MM-DD); default: the day after the newest landed day, "
        "or today when nothing has landed.",
    )
    shift_features: dict[str, float] = Field(
        default_factory=dict,
        description="Numeric features whose mean moves, in standard deviations (covariate drift).",
    )
    target_scale: float = Field(
        default=1.0, gt=0, description="Factor on the target: a changed relation (concept drift)."
    )


def next_day(landing: LandingZone, spec: UseCaseSpec) -> str:
    """The day after the newest landed day, or today when nothing landed yet."""
    days = [d for d in landing.files_by_day(spec.name) if parse_day(d)]
    if not days:
        return today().isoformat()
    return (dt.date.fromisoformat(max(days)) + dt.timedelta(days=1)).isoformat()


def land_generated(
    landing: LandingZone, spec: UseCaseSpec, config: SimulateConfig
) -> tuple[str, str, int]:
    """Generate and land one batch; returns ``(day, key, rows)``."""
    from mlops_assets.generators import DriftConfig, get_generator

    day = config.day or next_day(landing, spec)
    drift = DriftConfig(dict(config.shift_features), config.target_scale)
    frame = get_generator(spec.generator or spec.name).generate(
        config.rows, dt.date.fromisoformat(day), config.seed, None if drift.is_identity else drift
    )
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    key = landing.land(spec.name, day, "generated.csv", buffer.getvalue().encode())
    return day, key, len(frame)


def build_simulation(spec: UseCaseSpec) -> tuple[dg.JobDefinition, dg.ScheduleDefinition]:
    """The simulate job of a use case with a generator, and its daily schedule (off)."""

    @dg.op(name=f"{spec.name}__land_generated_day", tags={"kind": "generator"})
    def land_generated_day(
        context: dg.OpExecutionContext, config: SimulateConfig, landing: LandingZone
    ) -> None:
        day, key, rows = land_generated(landing, spec, config)
        context.log.info(f"landed {rows} generated rows for {day} at {key}")
        context.add_output_metadata({"day": day, "key": key, "rows": rows}, output_name="result")

    @dg.job(
        name=f"{spec.name}__simulate_new_day",
        description=f"{spec.name}: land the next day's generated batch (drift from config).",
        executor_def=dg.in_process_executor,
    )
    def simulate_new_day() -> None:
        land_generated_day()

    schedule = dg.ScheduleDefinition(
        name=f"{spec.name}__simulate_daily",
        cron_schedule="0 6 * * *",
        job=simulate_new_day,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=f"{spec.name}: land a generated batch every morning (off by default).",
    )
    return simulate_new_day, schedule
