"""``champion_bento``: the champion imported into BentoML and built into a servable bento."""

import dagster as dg

from mlops_assets.registry.assets import champion_key
from mlops_assets.registry.mlflow_resource import MlflowTracking
from mlops_assets.specs.model import UseCaseSpec


def bento_key(spec: UseCaseSpec) -> dg.AssetKey:
    """Asset key of the champion's bento."""
    return dg.AssetKey([spec.name, "champion_bento"])


def build_champion_bento(spec: UseCaseSpec) -> dg.AssetsDefinition:
    """The ``champion_bento`` asset of one use case."""

    @dg.asset(
        key=bento_key(spec),
        deps=[champion_key(view) for view in spec.segment_specs()],
        group_name=spec.name,
        kinds={"bentoml"},
        description=f"{spec.name}: the champion built into a BentoML bento (once per version).",
    )
    def champion_bento(context: dg.AssetExecutionContext, mlflow: MlflowTracking):
        from mlops_assets.serving.bento import BentoBuildError, ensure_champion_bento

        try:
            build = ensure_champion_bento(spec, mlflow)
        except BentoBuildError as error:
            raise dg.Failure(description=str(error)) from error
        action = "built" if build.built else "reused"
        if build.stale_source:
            context.log.warning(
                f"{build.bento_tag} was built from older bento/ code; `bentoml delete "
                f"{build.bento_tag}` and materialize again to rebuild it"
            )
        models = [build.model, *build.segment_models.values()][1 if build.segment_models else 0 :]
        served = ", ".join(f"{m.model_name} v{m.version}" for m in models)
        context.log.info(f"{action} bento {build.bento_tag} for {served} in {build.seconds:.1f} s")
        return dg.MaterializeResult(
            metadata={
                "bento_tag": build.bento_tag,
                "bentoml_model_tag": build.model_tag,
                "model_name": build.model.model_name,
                "model_version": build.model.version,
                "mlflow_run_id": build.model.run_id,
                "built": build.built,
                "stale_service_source": build.stale_source,
                "bento_bytes": build.bento_bytes,
                "model_bytes": build.model_bytes,
                "build_seconds": round(build.seconds, 2),
                **{
                    f"{segment}_model": f"{ref.model_name} v{ref.version}"
                    for segment, ref in build.segment_models.items()
                },
                "serve": dg.MetadataValue.md(
                    f"`mlops serve {spec.name}` or `bentoml serve {build.bento_tag}`"
                ),
            }
        )

    return champion_bento
