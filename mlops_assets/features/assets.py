"""``clean_data`` (row-level rules per day) and the train/test sets built from clean days."""

from collections.abc import Iterator
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field

from mlops_assets.features.cleaning import clean_frame, null_counts
from mlops_assets.features.quality import CLEAN_CHECKS, clean_checks, usable_days, write_verdict
from mlops_assets.features.splits import data_version, is_test_row, window_partitions
from mlops_assets.ingest.assets import check_results, check_specs, raw_key
from mlops_assets.ingest.event_dates import backfill_policy, by_event_date, split_by_day
from mlops_assets.partitions import daily_partitions
from mlops_assets.registry.lock import RetrainLock
from mlops_assets.specs.model import UseCaseSpec
from mlops_assets.storage.resources import STORAGE_RETRY_POLICY, ObjectStorage
from mlops_assets.storage.tables import read_table, stored_partitions, table_key


def clean_key(spec: UseCaseSpec) -> dg.AssetKey:
    """Asset key of a use case's clean data."""
    return dg.AssetKey([spec.name, "clean_data"])


def train_key(spec: UseCaseSpec) -> dg.AssetKey:
    """Asset key of the training set."""
    return dg.AssetKey([spec.name, "train_set"])


def test_key(spec: UseCaseSpec) -> dg.AssetKey:
    """Asset key of the held-out test set."""
    return dg.AssetKey([spec.name, "test_set"])


def build_clean_data(spec: UseCaseSpec) -> dg.AssetsDefinition:
    """The ``clean_data`` asset of one use case, with blocking type, null and domain checks."""
    key = clean_key(spec)

    @dg.asset(
        key=key,
        ins={"raw_data": dg.AssetIn(key=raw_key(spec))},
        group_name=spec.name,
        partitions_def=daily_partitions(spec),
        kinds={"pandas", "parquet"},
        check_specs=check_specs(key, CLEAN_CHECKS),
        retry_policy=STORAGE_RETRY_POLICY,
        backfill_policy=backfill_policy(spec),
        description=f"{spec.name}: the day's rows with the spec's row-level rules and types.",
    )
    def clean_data(
        context: dg.AssetExecutionContext, raw_data: pd.DataFrame, lake: ObjectStorage
    ) -> Iterator[Any]:
        clean, report = clean_frame(raw_data, spec)
        outcomes = clean_checks(clean, report, spec)
        output: pd.DataFrame | dict[str, pd.DataFrame] = clean
        days = [context.partition_key] if not by_event_date(spec) else []
        if by_event_date(spec):  # a range of event dates: one object per day with rows
            output = split_by_day(clean, spec)
            days = sorted(output)
        for day in days:
            write_verdict(lake.store(), spec, day, "clean", outcomes, context.run_id)
        yield dg.Output(
            output,
            metadata={
                "rows_in": report.rows_in,
                "rows_out": report.rows_out,
                "nulls": dg.MetadataValue.json(null_counts(clean)),
                "invalid_values": dg.MetadataValue.json(report.invalid_values),
                "remapped_values": dg.MetadataValue.json(report.remapped_values),
                "missing_columns": dg.MetadataValue.json(report.missing_columns),
                "unexpected_columns": dg.MetadataValue.json(report.unexpected_columns),
            },
        )
        yield from check_results(key, outcomes)

    return clean_data


class SplitConfig(dg.Config):
    """Which clean days make the training data."""

    window_days: int | None = Field(
        default=None,
        description="Days of clean data up to the newest stored day; default: the spec's "
        "training_window_days (None there means every stored day).",
    )


def load_window(
    lake: ObjectStorage, spec: UseCaseSpec, window_days: int | None
) -> tuple[pd.DataFrame, list[str], dict[str, str]]:
    """Clean days inside the window that are stored and passed their checks.

    Days never landed are skipped, not an error; days whose checks failed are returned with the
    reason, for the metadata.
    """
    store = lake.store()
    stored = stored_partitions(store, clean_key(spec).path)
    usable, excluded = usable_days(store, spec, stored)
    chosen = window_partitions(usable, window_days)
    if not chosen:
        raise dg.Failure(
            description=f"{spec.name}: no clean_data partition that passed its checks is stored "
            f"in {store.uri}; excluded: {excluded or 'none'}",
            allow_retries=False,
        )
    frames = [read_table(store, table_key(clean_key(spec).path, day)) for day in chosen]
    return pd.concat(frames, ignore_index=True), chosen, excluded


def build_splits(spec: UseCaseSpec) -> dg.AssetsDefinition:
    """``train_set`` and ``test_set``, computed together from one read of the window."""

    @dg.multi_asset(
        outs={
            "train_set": dg.AssetOut(
                key=train_key(spec),
                kinds={"pandas", "parquet"},
                description=f"{spec.name}: labelled rows of the window on the training side.",
            ),
            "test_set": dg.AssetOut(
                key=test_key(spec),
                kinds={"pandas", "parquet"},
                description=f"{spec.name}: labelled held-out rows, the same for every model.",
            ),
        },
        deps=[clean_key(spec)],
        group_name=spec.name,
        name=f"{spec.name}__splits",
        retry_policy=STORAGE_RETRY_POLICY,
    )
    def splits(
        context: dg.AssetExecutionContext,
        config: SplitConfig,
        lake: ObjectStorage,
        retrain_lock: RetrainLock,
    ):
        retrain_lock.acquire(spec.name)  # first retrain step: the run holds it until it ends
        window = config.window_days or spec.training_window_days
        frame, days, excluded = load_window(lake, spec, window)
        if spec.task == "forecast":  # daily series, zero-filled, with lags from past days
            from mlops_assets.features.forecast import prepare_history

            frame = prepare_history(frame, spec)
        frame = frame[frame[spec.target.name].notna()].reset_index(drop=True)
        if frame.empty:
            raise dg.Failure(
                description=f"{spec.name}: no labelled rows in days {days[0]}..{days[-1]}",
                allow_retries=False,
            )
        test_mask = is_test_row(frame, spec)
        train, test = (
            frame[~test_mask].reset_index(drop=True),
            frame[test_mask].reset_index(drop=True),
        )
        if train.empty or test.empty:
            raise dg.Failure(
                description=f"{spec.name}: split left {len(train)} train and {len(test)} test rows",
                allow_retries=False,
            )
        common = {
            "partitions": dg.MetadataValue.json(days),
            "first_day": days[0],
            "last_day": days[-1],
            "window_days": window or 0,
            "excluded_days": dg.MetadataValue.json(excluded),
        }
        yield dg.Output(
            train,
            output_name="train_set",
            metadata={**common, "num_rows": len(train), "data_version": data_version(train)},
        )
        yield dg.Output(
            test,
            output_name="test_set",
            metadata={**common, "num_rows": len(test), "data_version": data_version(test)},
        )

    return splits
