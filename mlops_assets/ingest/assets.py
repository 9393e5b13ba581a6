"""``raw_data``: a day's landed files, rows kept as they arrived plus ingestion columns."""

import datetime as dt

import dagster as dg
import pandas as pd

from mlops_assets.ingest.landing import LandingZone, fingerprint
from mlops_assets.ingest.readers import read_landed_file
from mlops_assets.partitions import daily_partitions
from mlops_assets.specs.model import UseCaseSpec


def raw_key(spec: UseCaseSpec) -> dg.AssetKey:
    """Asset key of a use case's raw data."""
    return dg.AssetKey([spec.name, "raw_data"])


def read_day(landing: LandingZone, spec: UseCaseSpec, day: str) -> tuple[pd.DataFrame, list]:
    """All files of a landing day concatenated, with source file and row number columns."""
    files = landing.files_for(spec.name, day)
    if not files:
        raise dg.Failure(
            description=f"{spec.name}: no files landed for {day} in "
            f"{landing.store().describe(f'{spec.name}/{day}/')}",
        )
    frames = []
    for info in files:
        frame = read_landed_file(info.key, landing.store().get_bytes(info.key))
        frame["_source_file"] = info.key
        frame["_row_number"] = range(1, len(frame) + 1)
        frames.append(frame)
    raw = pd.concat(frames, ignore_index=True)
    raw["_landed_date"] = day
    raw["_ingested_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return raw, files


def build_raw_data(spec: UseCaseSpec) -> dg.AssetsDefinition:
    """The ``raw_data`` asset of one use case."""

    @dg.asset(
        key=raw_key(spec),
        group_name=spec.name,
        partitions_def=daily_partitions(spec),
        kinds={"pandas", "parquet"},
        description=f"{spec.name}: every file landed on the day, rows as they arrived.",
    )
    def raw_data(context: dg.AssetExecutionContext, landing: LandingZone) -> pd.DataFrame:
        raw, files = read_day(landing, spec, context.partition_key)
        context.add_output_metadata(
            {
                "files": dg.MetadataValue.json([f.key for f in files]),
                "source_fingerprint": fingerprint(files),
                "num_rows": len(raw),
                "columns": dg.MetadataValue.json([c for c in raw.columns if c[:1] != "_"]),
            }
        )
        return raw

    return raw_data
