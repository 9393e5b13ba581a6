"""``tuned_model``: an Optuna study over the spec's model families, registered as challenger."""

from importlib import metadata as importlib_metadata
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field

from mlops_assets import settings
from mlops_assets.features.assets import train_key
from mlops_assets.registry.lock import RetrainLock
from mlops_assets.registry.mlflow_resource import CHALLENGER, MlflowTracking
from mlops_assets.specs.model import UseCaseSpec


def model_key(spec: UseCaseSpec, asset: str) -> dg.AssetKey:
    """Key of a per-model asset: ``<uc>/<asset>``, or ``<uc>/<segment>/<asset>`` for a segment."""
    return dg.AssetKey([spec.name, *([spec.segment] if spec.segment else []), asset])


def tuned_key(spec: UseCaseSpec) -> dg.AssetKey:
    """Asset key of the tuned challenger (of one segment, for a segment's view)."""
    return model_key(spec, "tuned_model")


class TuneConfig(dg.Config):
    """Budget of one tuning run; unset fields take the spec's defaults."""

    n_trials: int | None = Field(default=None, description="Optuna trials to run.")
    timeout_s: float | None = Field(default=None, description="Stop starting trials after this.")
    cv_folds: int | None = Field(default=None, description="Cross-validation folds per trial.")
    seed: int | None = Field(default=None, description="Seed of the sampler, folds and models.")
    n_workers: int | None = Field(
        default=None,
        ge=1,
        description="Worker processes sharing the study (needs PostgreSQL study storage; "
        "SQLite runs 1); default MLOPS_OPTUNA_WORKERS or 1.",
    )


class OptunaStorage(dg.ConfigurableResource):
    """Where Optuna keeps studies, so a crashed tuning run resumes its study."""

    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of Optuna's own database (not MLflow's); default "
        "MLOPS_OPTUNA_STORAGE or SQLite under MLOPS_HOME.",
    )

    def resolved(self) -> str:
        """The storage URL in force."""
        return self.url or settings.optuna_storage_uri()


def pip_requirements() -> list[str]:
    """Pinned requirements of a logged pipeline (skips MLflow's slow inference)."""
    names = ["scikit-learn", "catboost", "pandas", "numpy", "mlops-assets"]
    pins = []
    for name in names:
        try:
            pins.append(f"{name}=={importlib_metadata.version(name)}")
        except importlib_metadata.PackageNotFoundError:
            continue
    return pins


def _budget(spec: UseCaseSpec, config: TuneConfig) -> Any:
    from mlops_assets.training.tuning import TuningBudget

    tuning = spec.tuning
    return TuningBudget(
        n_trials=config.n_trials or tuning.n_trials,
        timeout_s=config.timeout_s or tuning.timeout_s,
        cv_folds=config.cv_folds or tuning.cv_folds,
        seed=config.seed if config.seed is not None else tuning.seed,
        pruner_startup_trials=tuning.pruner_startup_trials,
        early_stopping_rounds=tuning.early_stopping_rounds,
        n_workers=config.n_workers or settings.optuna_workers(),
    )


def log_trial(
    trial: Any, family: str, params: dict[str, Any], metrics: dict[str, float], state: str
):
    """Record one Optuna trial as a nested MLflow run (in a worker: under the tuning run)."""
    import mlflow

    from mlops_assets.training.tuning import trial_parent_run_id

    with mlflow.start_run(
        run_name=f"trial-{trial.number}", nested=True, parent_run_id=trial_parent_run_id()
    ):
        mlflow.set_tags(
            {"optuna.trial": str(trial.number), "optuna.state": state, "family": family}
        )
        MlflowTracking.log_params({"family": family, **params})
        if metrics:
            mlflow.log_metrics(metrics)


def log_and_register(
    spec: UseCaseSpec, mlflow_resource: MlflowTracking, pipeline: Any, train: pd.DataFrame
) -> Any:
    """Log the refit pipeline with signature and input example; register it as a new version."""
    import mlflow.sklearn
    from mlflow.models import infer_signature

    from mlops_assets.features.pipeline import model_input
    from mlops_assets.training.families import predict_frame

    example = model_input(train.head(5), spec)
    prediction, _ = predict_frame(pipeline, example, spec)
    info = mlflow.sklearn.log_model(
        pipeline,
        name="model",
        signature=infer_signature(example, prediction),
        input_example=example,
        pip_requirements=pip_requirements(),
        serialization_format="cloudpickle",
    )
    version = mlflow_resource.register_version(spec.registered_model_name(), info)
    mlflow_resource.client().set_registered_model_alias(
        spec.registered_model_name(), CHALLENGER, version
    )
    return version


def training_partitions(spec: UseCaseSpec, train: pd.DataFrame) -> list[str]:
    """The partitions a model learns from, for the MLflow tag the ledger reads its window from.

    Event-date partitions are a contiguous range of (zero-filled) days, possibly thousands:
    only the first and the last are kept, which is the window the ledger records anyway.
    """
    if spec.partitions.by == "event_date" and spec.partitions.date_column:
        days = pd.to_datetime(train[spec.partitions.date_column]).dt.strftime("%Y-%m-%d")
        return [days.min(), days.max()] if len(days) else []
    return sorted(train["_landed_date"].astype(str).unique())


def build_tuned_model(spec: UseCaseSpec) -> dg.AssetsDefinition:
    """The ``tuned_model`` asset of one use case."""

    @dg.asset(
        key=tuned_key(spec),
        ins={"train_set": dg.AssetIn(key=train_key(spec))},
        group_name=spec.name,
        kinds={"optuna", "mlflow", "catboost"},
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
    ) -> dg.MaterializeResult:
        from mlops_assets.features.splits import data_version
        from mlops_assets.training.tuning import run_study
        from mlops_assets.training.worker import study_name_for

        retrain_lock.acquire(spec.name)  # held by the run already; re-checked here
        budget = _budget(spec, config)
        version_of_data = data_version(train_set)
        partitions = training_partitions(spec, train_set)
        study_name = study_name_for(spec, train_set)  # the one `mlops tune-worker` grows
        tags = {
            "use_case": spec.name,
            **({"segment": spec.segment} if spec.segment else {}),
            "data_version": version_of_data,
            "data_partitions": ",".join(partitions),
            "optuna.study": study_name,
        }
        run_name = f"tune-{spec.segment + '-' if spec.segment else ''}{version_of_data}"
        with mlflow.start_run(spec.name, run_name, tags, context.run_id) as run:
            result = run_study(
                spec,
                train_set,
                budget,
                optuna_storage.resolved(),
                study_name,
                on_trial=log_trial,
                log=context.log.info,
            )
            import mlflow as mlflow_api

            MlflowTracking.log_params(
                {"best.family": result.family, **{f"best.{k}": v for k, v in result.params.items()}}
            )
            mlflow_api.log_metrics(
                {
                    f"cv_{spec.primary_metric}": result.cv_score,
                    "trials_complete": result.trials_complete,
                    "trials_pruned": result.trials_pruned,
                }
            )
            version = log_and_register(spec, mlflow, result.pipeline, train_set)
            run_id = run.info.run_id
        context.log.info(
            f"registered {spec.registered_model_name()} v{version} ({result.family}) "
            f"cv {spec.primary_metric}={result.cv_score:.4f} as {CHALLENGER}"
        )
        return dg.MaterializeResult(
            metadata={
                "model_name": spec.registered_model_name(),
                "model_version": version,
                "mlflow_run_id": run_id,
                "model_family": result.family,
                f"cv_{spec.primary_metric}": result.cv_score,
                "trials_complete": result.trials_complete,
                "trials_pruned": result.trials_pruned,
                "trials_failed": result.trials_failed,
                "optuna_study": study_name,
                "data_version": version_of_data,
                "train_rows": len(train_set),
                "params": dg.MetadataValue.json(result.params),
            }
        )

    return tuned_model
