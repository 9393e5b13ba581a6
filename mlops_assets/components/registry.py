"""``champion_model`` (the promotion gate on the current test set) and ``promotion_ledger``."""

import datetime as dt
from dataclasses import dataclass
from typing import Any

import dagster as dg
import pandas as pd

from mlops_assets import names
from mlops_assets.components.checks import as_metadata
from mlops_assets.components.features import test_key, train_key
from mlops_assets.components.resources import (
    STORAGE_RETRY_POLICY,
    AlertWebhookResource,
    MlflowTracking,
    ObjectStorage,
    RetrainLock,
    fails_at_once,
)
from mlops_assets.components.training import slot_key, tuned_key
from mlops_assets.features.pipeline import model_input
from mlops_assets.monitoring.alerts import promotion as promotion_alert
from mlops_assets.registry.ledger import LedgerEntry, append_entry, as_of, read_ledger
from mlops_assets.registry.promotion import ConcurrentPromotionError, Decision, decide
from mlops_assets.registry.tracking import Tracking
from mlops_assets.specs.model import UseCaseSpec
from mlops_assets.training.baseline import baseline_name, baseline_predictions
from mlops_assets.training.evaluation import (
    bootstrap_improvement,
    evaluate_version,
    labelled,
    score_predictions,
)
from mlops_assets.training.families import predict_frame

BOOTSTRAP_REPLICATES = 1000


def champion_key(spec: UseCaseSpec) -> dg.AssetKey:
    """Asset key of the champion (of one segment, for a segment's view)."""
    return slot_key(spec, names.CHAMPION_MODEL)


def ledger_key(spec: UseCaseSpec) -> dg.AssetKey:
    """Asset key of the promotion ledger."""
    return dg.AssetKey(names.asset_path(spec.name, names.PROMOTION_LEDGER))


def record_scores(tracking: Tracking, name: str, version: str, scores: dict[str, float]) -> None:
    """Keep a version's latest test scores on the version itself (``mlops status`` reads them)."""
    client = tracking.client()
    for metric, value in scores.items():
        client.set_model_version_tag(
            name, version, f"{names.TEST_METRIC_PREFIX}{metric}", f"{value:.6g}"
        )


def promote(tracking: Tracking, spec: UseCaseSpec, decision: Decision) -> None:
    """Move the champion alias, unless someone else moved it since it was scored."""
    name = spec.registered_model_name()
    current = tracking.alias_version(name, names.CHAMPION)
    current_version = str(current.version) if current is not None else None
    if current_version != decision.incumbent_version:
        raise ConcurrentPromotionError(
            f"{name}: champion moved from v{decision.incumbent_version} to v{current_version} "
            "while this run evaluated it; nothing was changed, re-run to compare against it"
        )
    client = tracking.client()
    client.set_registered_model_alias(name, names.CHAMPION, decision.challenger_version)
    client.set_model_version_tag(
        name,
        decision.challenger_version,
        "promoted_at",
        dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    if decision.incumbent_version is not None:
        client.set_model_version_tag(
            name, decision.challenger_version, "previous_champion", decision.incumbent_version
        )


def training_days(tracking: Tracking, run_id: str | None) -> list[str]:
    """The first and last partition a registered version was trained on (its run's tag)."""
    tags = tracking.run_tags(run_id)
    return sorted(filter(None, tags.get(names.DATA_PARTITIONS_TAG, "").split(",")))


def ledger_entry(
    spec: UseCaseSpec,
    decision: Decision,
    context: dg.AssetExecutionContext,
    challenger_days: list[str],
) -> LedgerEntry:
    """The ledger's record of a gate decision, with what triggered the run."""
    return LedgerEntry(
        challenger_train_first_day=challenger_days[0] if challenger_days else None,
        challenger_train_last_day=challenger_days[-1] if challenger_days else None,
        action="promotion_gate",
        model_name=spec.registered_model_name(),
        segment=spec.segment,
        champion_version=decision.challenger_version
        if decision.promote
        else decision.incumbent_version,
        reason=decision.reason,
        promoted=decision.promote,
        challenger_version=decision.challenger_version,
        incumbent_version=decision.incumbent_version,
        metric=decision.metric,
        challenger_score=decision.challenger_score,
        incumbent_score=decision.incumbent_score,
        margin=decision.margin,
        improvement=decision.improvement,
        baseline_name=decision.baseline_name,
        baseline_score=decision.baseline_score,
        baseline_improvement=decision.baseline_improvement,
        baseline_low=decision.baseline_low,
        baseline_high=decision.baseline_high,
        trigger=context.run.tags.get(names.TRIGGER_TAG, "manual"),
        dagster_run_id=context.run_id,
        at=as_of(context.run.tags),
    )


def build_promotion_ledger(spec: UseCaseSpec) -> dg.AssetsDefinition:
    """The ``promotion_ledger`` asset: the append-only decision table, published.

    One ledger per use case: a segmented use case's entries name their segment and model.
    """

    @dg.asset(
        key=ledger_key(spec),
        deps=[champion_key(view) for view in spec.segment_specs()],
        group_name=spec.name,
        kinds={"pandas", "parquet"},
        description=f"{spec.name}: every promotion decision, rollback and delete, oldest first.",
        retry_policy=STORAGE_RETRY_POLICY,
        pool=names.retrain_pool(spec.name),
    )
    def promotion_ledger(context: dg.AssetExecutionContext, lake: ObjectStorage) -> pd.DataFrame:
        with fails_at_once(f"{spec.name} promotion ledger"):
            ledger = read_ledger(lake.store(), spec)
        last = ledger.iloc[-1] if len(ledger) else None
        context.add_output_metadata(
            {
                "entries": len(ledger),
                "promotions": int(ledger["promoted"].astype(bool).sum()) if len(ledger) else 0,
                names.CHAMPION_VERSION: str(last["champion_version"]) if last is not None else "",
                "last_reason": str(last["reason"]) if last is not None else "",
                "preview": dg.MetadataValue.md(
                    ledger.tail(10)[
                        ["at", "action", "model_name", "champion_version", "challenger_version"]
                        + ["reason"]
                    ].to_markdown(index=False)
                    if len(ledger)
                    else "(empty)"
                ),
            }
        )
        return ledger

    return promotion_ledger


@dataclass(frozen=True)
class Floor:
    """The challenger against the trivial baseline on the test rows."""

    scores: dict[str, float]  # the challenger's metrics
    baseline: str
    baseline_score: float
    interval: tuple[float, float]
    level: float
    resampled: str = "rows"  # what the bootstrap drew: rows, or a forecast's series


def baseline_floor(
    spec: UseCaseSpec, pipeline: Any, train: pd.DataFrame, test: pd.DataFrame
) -> Floor:
    """The challenger's scores, the baseline's, and the bootstrap interval of the improvement."""
    rows = labelled(test, spec)
    y_true = rows[spec.target.name]
    challenger = predict_frame(pipeline, model_input(rows, spec), spec)
    baseline = baseline_predictions(spec, labelled(train, spec), rows)
    scores = score_predictions(spec, y_true, *challenger, rows)
    floor = score_predictions(spec, y_true, *baseline, rows)[spec.primary_metric]
    level = spec.promotion.baseline_confidence
    boot = bootstrap_improvement(
        spec,
        y_true,
        challenger,
        baseline,
        rows=rows,
        n=BOOTSTRAP_REPLICATES,
        seed=spec.tuning.seed,
        level=level,
    )
    return Floor(scores, baseline_name(spec), floor, (boot.low, boot.high), level, boot.resampled)


def build_champion_model(spec: UseCaseSpec) -> dg.AssetsDefinition:
    """The ``champion_model`` asset of one model slot."""

    @dg.asset(
        key=champion_key(spec),
        ins={
            "test_set": dg.AssetIn(key=test_key(spec)),
            "train_set": dg.AssetIn(key=train_key(spec)),
        },
        deps=[tuned_key(spec)],
        group_name=spec.name,
        kinds={"mlflow"},
        pool=names.retrain_pool(spec.name),
        description=f"{spec.registered_model_name()}: the registry's champion after the "
        "promotion gate (better than the champion, and than a trivial baseline).",
    )
    def champion_model(
        context: dg.AssetExecutionContext,
        test_set: pd.DataFrame,
        train_set: pd.DataFrame,
        mlflow: MlflowTracking,
        lake: ObjectStorage,
        retrain_lock: RetrainLock,
        alerts: AlertWebhookResource,
    ) -> dg.MaterializeResult:
        retrain_lock.acquire(spec.name)  # held by the run already; re-checked before the gate
        tracking = mlflow.tracking()
        name = spec.registered_model_name()
        challenger = tracking.alias_version(name, names.CHALLENGER)
        if challenger is None:
            raise dg.Failure(
                description=f"{name}: no version carries the `{names.CHALLENGER}` alias"
            )
        incumbent = tracking.alias_version(name, names.CHAMPION)
        metric = spec.primary_metric
        pipeline = tracking.load_pipeline(name, str(challenger.version))
        floor = baseline_floor(spec, pipeline, train_set, test_set)
        challenger_scores = floor.scores
        record_scores(tracking, name, str(challenger.version), challenger_scores)
        incumbent_scores: dict[str, float] = {}
        if incumbent is not None and str(incumbent.version) != str(challenger.version):
            incumbent_scores = evaluate_version(tracking, spec, str(incumbent.version), test_set)
            record_scores(tracking, name, str(incumbent.version), incumbent_scores)
        elif incumbent is not None:
            incumbent_scores = challenger_scores
        decision = decide(
            metric,
            spec.promotion.margin,
            str(challenger.version),
            challenger_scores[metric],
            str(incumbent.version) if incumbent is not None else None,
            incumbent_scores.get(metric),
            baseline_score=floor.baseline_score,
            baseline_name=floor.baseline,
            baseline_interval=floor.interval,
            baseline_level=floor.level,
        )
        context.log.info(f"promotion decision for {name}: {decision.reason}")
        if decision.promote:
            promote(tracking, spec, decision)
        days = training_days(tracking, challenger.run_id)
        append_entry(lake.store(), spec, ledger_entry(spec, decision, context, days))
        if decision.promote:
            alert = promotion_alert(
                spec,
                decision.challenger_version,
                decision.incumbent_version,
                decision.reason,
                context.run_id,
            )
            alerts.send(alert, context.log.warning)
        champion_version = (
            decision.challenger_version if decision.promote else decision.incumbent_version
        )
        champion_scores = challenger_scores if decision.promote else incumbent_scores
        return dg.MaterializeResult(
            metadata=as_metadata(
                {
                    "model_name": name,
                    names.CHAMPION_VERSION: champion_version or "",
                    names.PROMOTED: decision.promote,
                    "reason": decision.reason,
                    "challenger_version": decision.challenger_version,
                    "incumbent_version": decision.incumbent_version or "",
                    f"challenger_{metric}": decision.challenger_score,
                    f"incumbent_{metric}": decision.incumbent_score
                    if decision.incumbent_score is not None
                    else float("nan"),
                    "baseline": floor.baseline,
                    f"baseline_{metric}": floor.baseline_score,
                    "baseline_improvement": decision.baseline_improvement or 0.0,
                    "baseline_interval": dg.MetadataValue.json(
                        [round(floor.interval[0], 4), round(floor.interval[1], 4)]
                    ),
                    "margin": decision.margin,
                    "improvement": decision.improvement
                    if decision.improvement is not None
                    else 0.0,
                    "test_rows": len(test_set),
                    **{f"champion_{k}": v for k, v in champion_scores.items()},
                    "challenger_mlflow_run_id": challenger.run_id or "",
                }
            )
        )

    return champion_model
