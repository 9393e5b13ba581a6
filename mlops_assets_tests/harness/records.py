"""Test data shared by several test modules: raw serving records, landed CSV, a sensor tick.

* :func:`record` (one valid raw BigMart record, fields changed or removed at will) and
  :func:`landed_records` (a landed frame as a client would send it) for the serving tests;
* :func:`records` (rows of a frame as JSON-ready records, NaN as None) for served use cases;
* :data:`CSV` and :func:`tick` (one evaluation of a use case's landing sensor) for the landing
  sensor's tests, on a folder and on a bucket;
* :func:`scored_batch` (a batch as the prediction log receives it) for the log's tests.

``mlops_assets`` is imported inside the helpers that need it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    import dagster as dg

    from mlops_assets.components.resources import LandingZone, ObjectStorage
    from mlops_assets.prediction_log import ScoredBatch
    from mlops_assets.specs import UseCaseSpec

CSV = b"Item_Identifier,Item_MRP\nFDA15,249.8\n"

__all__ = ["CSV", "landed_records", "record", "records", "scored_batch", "tick"]


def record(**changes: Any) -> dict[str, Any]:
    """One valid raw record, with ``changes`` applied (a value of ``...`` removes the field)."""
    base: dict[str, Any] = {
        "Item_Identifier": "FDA15",
        "Item_Weight": 9.3,
        "Item_Fat_Content": "LF",
        "Item_Visibility": 0,
        "Item_Type": "Dairy",
        "Item_MRP": 249.8,
        "Outlet_Identifier": "OUT049",
        "Outlet_Establishment_Year": 1999,
        "Outlet_Size": "Medium",
        "Outlet_Location_Type": "Tier 1",
        "Outlet_Type": "Supermarket Type1",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not ...}


def landed_records(frame: pd.DataFrame, spec: UseCaseSpec) -> list[dict[str, Any]]:
    """Rows as a client holding the landed file would send them (CSV text, empty = null)."""
    from mlops_assets.ingest.readers import read_csv_text

    text = read_csv_text(frame.to_csv(index=False))
    columns = [c.name for c in spec.input_columns]
    return [
        {k: (None if pd.isna(v) else v) for k, v in row.items()}
        for row in text[columns].to_dict("records")
    ]


def records(rows: pd.DataFrame, fields: list[str]) -> list[dict[str, Any]]:
    """The ``fields`` of ``rows`` as JSON-ready records (NaN as None)."""
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in rows[fields].astype(object).to_dict("records")
    ]


def tick(
    spec: UseCaseSpec,
    landing: LandingZone,
    lake: ObjectStorage,
    instance: dg.DagsterInstance,
    cursor: str | None,
):
    """One evaluation of ``spec``'s landing sensor on ``landing`` and ``lake``, from ``cursor``.

    ``lake`` holds the ingestion ledger the sensor reads to tell new files from ingested ones.
    """
    import dagster as dg

    from mlops_assets import names
    from mlops_assets.components.ingest import build_landing_sensor

    sensor = build_landing_sensor(spec, names.ingest_job(spec.name))
    with dg.build_sensor_context(
        cursor=cursor, instance=instance, resources={"landing": landing, "lake": lake}
    ) as context:
        return sensor.evaluate_tick(context)


def scored_batch(
    spec: UseCaseSpec, ids: list[str], counts: list[int], **changes: Any
) -> ScoredBatch:
    """A scored batch of ``sum(counts)`` cleaned records, ``counts[i]`` of them for ``ids[i]``."""
    import numpy as np

    from mlops_assets.features.cleaning import clean_frame
    from mlops_assets.prediction_log import ScoredBatch

    raw = pd.DataFrame([record(**changes) for _ in range(sum(counts))])
    cleaned, _ = clean_frame(raw, spec)
    return ScoredBatch(ids, counts, cleaned, np.arange(sum(counts), dtype=float), "m", "3")
