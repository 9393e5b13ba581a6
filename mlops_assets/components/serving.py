"""``champion_bento``: every slot's champion imported into BentoML and built into one bento."""

import dagster as dg

from mlops_assets import names
from mlops_assets.bentos.build import BentoBuildError, NoChampionError
from mlops_assets.components.registry import champion_key
from mlops_assets.components.resources import BentoStoreResource, MlflowTracking
from mlops_assets.specs.model import UseCaseSpec


def bento_key(spec: UseCaseSpec) -> dg.AssetKey:
    """Asset key of the champion's bento."""
    return dg.AssetKey(names.asset_path(spec.name, names.CHAMPION_BENTO))


def build_champion_bento(spec: UseCaseSpec) -> dg.AssetsDefinition:
    """The ``champion_bento`` asset of one use case (every slot's champion in one bento)."""

    @dg.asset(
        key=bento_key(spec),
        deps=[champion_key(view) for view in spec.segment_specs()],
        group_name=spec.name,
        kinds={"bentoml"},
        pool=names.retrain_pool(spec.name),
        description=f"{spec.name}: the champion built into a BentoML bento (once per version).",
    )
    def champion_bento(
        context: dg.AssetExecutionContext, mlflow: MlflowTracking, bentos: BentoStoreResource
    ) -> dg.MaterializeResult:
        try:
            build = bentos.store(mlflow).ensure_champion_bento(spec)
        except NoChampionError as error:  # the gate kept every challenger out: nothing to serve
            context.log.info(str(error))
            return dg.MaterializeResult(
                metadata={"status": "no champion to serve", "why": str(error)}
            )
        except BentoBuildError as error:
            raise dg.Failure(description=str(error)) from error
        action = "built" if build.built else "reused"
        if build.stale_source:
            context.log.warning(
                f"{build.bento_tag} was built from older bento/ code; `bentoml delete "
                f"{build.bento_tag}` and materialize again to rebuild it"
            )
        served = ", ".join(f"{m.model_name} v{m.version}" for m in build.models.values())
        context.log.info(f"{action} bento {build.bento_tag} for {served} in {build.seconds:.1f} s")
        first = next(iter(build.models.values()))
        return dg.MaterializeResult(
            metadata={
                "bento_tag": build.bento_tag,
                "bentoml_model_tag": build.model_tag,
                "model_name": first.model_name,
                "model_version": first.version,
                "mlflow_run_id": first.run_id,
                "built": build.built,
                "stale_service_source": build.stale_source,
                "bento_bytes": build.bento_bytes,
                "model_bytes": build.model_bytes,
                "build_seconds": round(build.seconds, 2),
                **{
                    f"{segment}_model": f"{ref.model_name} v{ref.version}"
                    for segment, ref in build.models.items()
                    if segment
                },
                "serve": dg.MetadataValue.md(
                    f"`mlops serve {spec.name}` or `bentoml serve {build.bento_tag}`"
                ),
            }
        )

    return champion_bento
