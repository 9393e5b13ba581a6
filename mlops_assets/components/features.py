"""``clean_data`` (row-level rules per day) and the train/test sets built from clean days."""

from collections.abc import Iterator
from typing import Any

import dagster as dg
from pydantic import Field

from mlops_assets import names
from mlops_assets.components.checks import alert_rejected_days, check_results, check_specs
from mlops_assets.components.ingest import raw_key
from mlops_assets.components.partitions import daily_partitions
from mlops_assets.components.progress import Progress
from mlops_assets.components.resources import (
    STORAGE_RETRY_POLICY,
    AlertWebhookResource,
    ObjectStorage,
    RetrainLock,
    fails_at_once,
)
from mlops_assets.features.cleaning import clean_frame, null_counts
from mlops_assets.features.forecast import in_series_sample, prepare_history
from mlops_assets.features.quality import (
    CLEAN_CHECKS,
    CLEAN_WARNINGS,
    clean_checks,
    null_rate_warning,
    write_verdict,
)
from mlops_assets.features.splits import (
    NoTrainingDataError,
    data_version,
    is_test_row,
    load_window,
)
from mlops_assets.monitoring.profile import serving_profiles, shift_warning
from mlops_assets.registry.ledger import as_of
from mlops_assets.specs.model import UseCaseSpec
from mlops_assets.storage.tables import read_table, stored_partitions, table_key, write_table


def clean_key(spec: UseCaseSpec) -> dg.AssetKey:
    """Asset key of a use case's clean data."""
    return dg.AssetKey(names.asset_path(spec.name, names.CLEAN_DATA))


def train_key(spec: UseCaseSpec) -> dg.AssetKey:
    """Asset key of the training set."""
    return dg.AssetKey(names.asset_path(spec.name, names.TRAIN_SET))


def test_key(spec: UseCaseSpec) -> dg.AssetKey:
    """Asset key of the held-out test set."""
    return dg.AssetKey(names.asset_path(spec.name, names.TEST_SET))


def build_clean_data(spec: UseCaseSpec) -> dg.AssetsDefinition:
    """The ``clean_data`` asset of one use case, with blocking type, null and domain checks."""
    key = clean_key(spec)

    @dg.asset(
        key=key,
        deps=[raw_key(spec)],
        group_name=spec.name,
        partitions_def=daily_partitions(spec),
        kinds={"pandas", "parquet"},
        check_specs=[
            *check_specs(key, CLEAN_CHECKS),
            *check_specs(key, CLEAN_WARNINGS, blocking=False),
        ],
        retry_policy=STORAGE_RETRY_POLICY,
        backfill_policy=dg.BackfillPolicy.single_run(),
        description=f"{spec.name}: the day's rows with the spec's row-level rules and types.",
    )
    def clean_data(
        context: dg.AssetExecutionContext,
        lake: ObjectStorage,
        alerts: AlertWebhookResource,
    ) -> Iterator[Any]:
        """One day at a time: a run over a range holds one day's rows, not the range's.

        Each raw day is read, cleaned, checked and written before the next is read (the
        asset writes its own tables, where the IO manager would have held every day of a
        backfill in memory until the end); nothing downstream loads it through an IO manager.
        """
        store = lake.store()
        outcomes = {}
        reports = []
        nulls: list[dict[str, int]] = []
        written = 0
        serving = serving_profiles(store, spec, as_of(context.run.tags)[:10])
        stored = set(stored_partitions(store, raw_key(spec).path))  # one listing, not a HEAD a day
        days = [d for d in context.partition_keys if d in stored]
        if not days:
            raise dg.Failure(
                description=f"{spec.name}: none of the days {context.partition_keys[0]}.."
                f"{context.partition_keys[-1]} has raw rows in {store.uri}: materialize "
                "raw_data first",
                allow_retries=False,
            )
        progress = Progress(context.log.info, len(days), "cleaned")
        for day in days:
            progress.step()
            with fails_at_once(f"{spec.name} raw day {day}"):
                raw = read_table(store, table_key(raw_key(spec).path, day))
            clean, report = clean_frame(raw, spec)
            outcomes[day] = [
                *clean_checks(clean, report, spec),
                null_rate_warning(clean, spec),
                shift_warning(serving, clean, spec.retraining.max_psi),
            ]
            reports.append(report)
            nulls.append(null_counts(clean))
            write_verdict(store, spec, day, "clean", outcomes[day], context.run_id)
            written += write_table(store, table_key(key.path, day), clean)
        yield dg.MaterializeResult(
            metadata={
                "uri": store.describe(table_key(key.path).removesuffix(".parquet") + "/"),
                "bytes": written,
                "partitions_written": len(days),
                "rows_in": sum(r.rows_in for r in reports),
                names.ROWS_OUT: sum(r.rows_out for r in reports),
                "nulls": dg.MetadataValue.json(_summed(nulls)),
                "invalid_values": dg.MetadataValue.json(_summed(r.invalid_values for r in reports)),
                "remapped_values": dg.MetadataValue.json(
                    _summed(r.remapped_values for r in reports)
                ),
                "missing_columns": dg.MetadataValue.json(
                    sorted({c for r in reports for c in r.missing_columns})
                ),
                "unexpected_columns": dg.MetadataValue.json(
                    sorted({c for r in reports for c in r.unexpected_columns})
                ),
            },
        )
        alert_rejected_days(alerts, spec, key, outcomes, context)
        yield from check_results(key, outcomes)

    return clean_data


def _summed(counts: Any) -> dict[str, int]:
    total: dict[str, int] = {}
    for found in counts:
        for name, count in found.items():
            total[name] = total.get(name, 0) + count
    return total


class SplitConfig(dg.Config):
    """Which clean days make the training data."""

    window_days: int | None = Field(
        default=None,
        description="Days of clean data up to the newest stored day; default: the spec's "
        "training_window_days (None there means every stored day).",
    )


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
        name=names.splits_op(spec.name),
        retry_policy=STORAGE_RETRY_POLICY,
        pool=names.retrain_pool(spec.name),
    )
    def splits(
        context: dg.AssetExecutionContext,
        config: SplitConfig,
        lake: ObjectStorage,
        retrain_lock: RetrainLock,
    ):
        retrain_lock.acquire(spec.name)  # first retrain step: the run holds it until it ends
        window = config.window_days or spec.training_window_days
        sample = spec.forecast.series_sample if spec.forecast is not None else None
        rows = (lambda day: in_series_sample(day, spec)) if sample else None
        try:
            with fails_at_once(f"{spec.name} training window"):
                frame, days, excluded = load_window(lake.store(), spec, window, rows)
        except NoTrainingDataError as error:
            raise dg.Failure(description=str(error), allow_retries=False) from error
        if spec.forecast is not None:  # daily series, zero-filled, with lags from past days
            frame = prepare_history(frame, spec)
        frame = frame[frame[spec.target.name].notna()].reset_index(drop=True)
        if frame.empty:
            raise dg.Failure(
                description=f"{spec.name}: no labelled rows in days {days[0]}..{days[-1]}",
                allow_retries=False,
            )
        sampled = {}
        if sample:  # the share of series trained and tested on (a forecast's)
            series = frame[spec.forecast.series].drop_duplicates()
            sampled = {"series_sample": sample, "series_sampled": len(series)}
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
            names.LAST_DAY: days[-1],
            "window_days": window or 0,
            **sampled,
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
