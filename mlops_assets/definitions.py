"""The code location: one generated graph per use-case spec; resources picked per environment."""

from __future__ import annotations

import dagster as dg

from mlops_assets.resources import resources_for_environment
from mlops_assets.specs import load_specs
from mlops_assets.use_case import build_use_case


@dg.definitions
def defs() -> dg.Definitions:
    """Definitions for every spec; built when Dagster loads the location, not at import."""
    parts = [build_use_case(spec) for spec in load_specs().values()]
    return dg.Definitions(
        assets=[a for p in parts for a in p.assets],
        asset_checks=[c for p in parts for c in p.asset_checks],
        jobs=[j for p in parts for j in p.jobs],
        sensors=[s for p in parts for s in p.sensors],
        schedules=[s for p in parts for s in p.schedules],
        resources=resources_for_environment(),
    )
