"""``tuned_model``: an Optuna study over the spec's model families, registered as challenger."""

from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field

from mlops_assets import names
from mlops_assets.components.checks import as_metadata
from mlops_assets.components.features import train_key
from mlops_assets.components.resources import (
    MlflowTracking,
    ObjectStorage,
    OptunaStorage,
    RetrainLock,
)
from mlops_assets.features.pipeline import model_input
from mlops_assets.features.splits import data_version
from mlops_assets.monitoring.profile import build_profile, prediction_profile, write_profile
from mlops_assets.specs.model import UseCaseSpec
from mlops_assets.training.families import predict_frame
from mlops_assets.training.registration import log_and_register, log_trial, training_partitions
from mlops_assets.training.tuning import budget_for, run_study
from mlops_assets.training.worker import study_name_for


def slot_key(spec: UseCaseSpec, asset: str) -> dg.AssetKey:
    """Key of a per-slot asset: ``<uc>/<asset>``, or ``<uc>/<segment>/<asset>`` for a segment."""
    return dg.AssetKey(names.asset_path(spec.name, asset, spec.segment))


def tuned_key(spec: UseCaseSpec) -> dg.AssetKey:
    """Asset key of the tuned challenger (of one segment, for a segment's view)."""
    return slot_key(spec, names.TUNED_MODEL)


class TuneConfig(dg.Config):
    """Budget of one tuning run; unset fields take the spec's defaults."""

    n_trials: int | None = Field(default=None, description="Optuna trials to run.")
    timeout_s: float | None = Field(
        default=None,
        description="Stop starting trials after this many seconds; 0: no time limit (the "
        "trial count alone); default: the spec's.",
    )
    cv_folds: int | None = Field(default=None, description="Cross-validation folds per trial.")
    seed: int | None = Field(default=None, description="Seed of the sampler, folds and models.")
    n_workers: int | None = Field(
        default=None,
        ge=1,
        description="Worker processes sharing the study (needs PostgreSQL study storage; "
        "SQLite runs 1); default MLOPS_OPTUNA_WORKERS or 1.",
    )


PROFILE_SAMPLE = 5000


def reference_profile(spec: UseCaseSpec, pipeline: Any, train: pd.DataFrame) -> dict[str, Any]:
    """What the version learnt from: its training rows' profile and its predictions on them."""
    profile = build_profile(spec, train)
    sample = train.sample(min(len(train), PROFILE_SAMPLE), random_state=0)
    predictions, _ = predict_frame(pipeline, model_input(sample, spec), spec)
    profile["prediction"] = prediction_profile(spec, predictions)
    return profile


def build_tuned_model(spec: UseCaseSpec) -> dg.AssetsDefinition:
    """The ``tuned_model`` asset of one model slot."""

    @dg.asset(
        key=tuned_key(spec),
        ins={"train_set": dg.AssetIn(key=train_key(spec))},
        group_name=spec.name,
        kinds={"optuna", "mlflow", "catboost"},
        pool=names.retrain_pool(spec.name),
        description=f"{spec.registered_model_name()}: best model of an Optuna search, "
        "registered as challenger.",
    )
    def tuned_model(
        context: dg.AssetExecutionContext,
        config: TuneConfig,
        train_set: pd.DataFrame,
        mlflow: MlflowTracking,
        optuna_storage: OptunaStorage,
        retrain_lock: RetrainLock,
        lake: ObjectStorage,
    ) -> dg.MaterializeResult:
        retrain_lock.acquire(spec.name)  # held by the run already; re-checked here
        tracking = mlflow.tracking()
        budget = budget_for(
            spec,
            n_trials=config.n_trials,
            timeout_s=config.timeout_s,
            cv_folds=config.cv_folds,
            seed=config.seed,
            n_workers=config.n_workers or optuna_storage.workers,
        )
        version_of_data = data_version(train_set)
        partitions = training_partitions(spec, train_set)
        study_name = study_name_for(spec, train_set)  # the one `mlops tune-worker` grows
        tags = {
            "use_case": spec.name,
            **({"segment": spec.segment} if spec.segment else {}),
            names.DATA_VERSION_TAG: version_of_data,
            names.DATA_PARTITIONS_TAG: ",".join(partitions),
            names.STUDY_TAG: study_name,
        }
        run_name = f"tune-{spec.segment + '-' if spec.segment else ''}{version_of_data}"
        with tracking.start_run(spec.name, run_name, tags, context.run_id) as run:
            result = run_study(
                spec,
                train_set,
                budget,
                optuna_storage.url,
                study_name,
                on_trial=log_trial,
                log=context.log.info,
            )
            tracking.log_params(
                {"best.family": result.family, **{f"best.{k}": v for k, v in result.params.items()}}
            )
            tracking.log_metrics(
                {
                    f"cv_{spec.primary_metric}": result.cv_score,
                    "trials_complete": result.trials_complete,
                    "trials_pruned": result.trials_pruned,
                }
            )
            version = log_and_register(spec, tracking, result.pipeline, train_set)
            profile = reference_profile(spec, result.pipeline, train_set)
            tracking.log_dict(profile, "reference_profile.json")
            write_profile(lake.store(), spec, version, profile)
            run_id = run.info.run_id
        context.log.info(
            f"registered {spec.registered_model_name()} v{version} ({result.family}) "
            f"cv {spec.primary_metric}={result.cv_score:.4f} as {names.CHALLENGER}"
        )
        return dg.MaterializeResult(
            metadata=as_metadata(
                {
                    "model_name": spec.registered_model_name(),
                    "model_version": version,
                    "mlflow_run_id": run_id,
                    "model_family": result.family,
                    f"cv_{spec.primary_metric}": result.cv_score,
                    "trials_complete": result.trials_complete,
                    "trials_pruned": result.trials_pruned,
                    "trials_failed": result.trials_failed,
                    "trials_cut_at_deadline": result.trials_cut,
                    "refit_cut_at_deadline": result.refit_cut,
                    "optuna_study": study_name,
                    "data_version": version_of_data,
                    "train_rows": len(train_set),
                    "params": dg.MetadataValue.json(result.params),
                }
            )
        )

    return tuned_model
