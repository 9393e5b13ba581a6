"""Daily partitions, one definition per use case."""

from __future__ import annotations

import dagster as dg

from mlops_assets.ingest.days import today
from mlops_assets.specs.model import UseCaseSpec


def daily_partitions(spec: UseCaseSpec) -> dg.DailyPartitionsDefinition:
    """Days from the spec's start date up to and including today (``end_offset=1``).

    A batch landed today can be processed today; without the offset the last partition would
    be yesterday.
    """
    return dg.DailyPartitionsDefinition(
        start_date=spec.partitions.start_date.isoformat(), end_offset=1, timezone="UTC"
    )


def partition_bounds(spec: UseCaseSpec) -> tuple[str, str]:
    """The first and the last partition that exist (the last is today)."""
    return spec.partitions.start_date.isoformat(), today().isoformat()
