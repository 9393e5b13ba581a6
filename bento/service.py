"""The champion of one use case behind ``POST /predict``: a thin BentoML shell.

Which use case and model come from the bento's build arguments (``use_case``, ``model_tag``;
set by the ``champion_bento`` asset), or when serving this folder directly from
``MLOPS_USE_CASE`` / ``MLOPS_MODEL_TAG``. Cleaning, validation, batching, scoring and the
prediction log live in ``mlops_assets.serving`` (the code training uses), not here.

Serving options are read from the environment at start: ``MLOPS_SERVING_MAX_RECORDS``,
``MLOPS_SERVING_WORKERS``, ``MLOPS_SERVING_MAX_BATCH_RECORDS``, ``MLOPS_SERVING_BATCH_WAIT_MS``,
``MLOPS_PREDICTION_LOG`` (on/off) and ``MLOPS_PREDICTION_LOG_FLUSH_S``; the log is written under
``MLOPS_STORAGE_URI`` (default ``<MLOPS_HOME>/storage``). With ``MLOPS_FOLLOW_CHAMPION=on`` (set
by ``mlops serve``) the service follows the registry's ``champion`` alias, polled every
``MLOPS_CHAMPION_POLL_S`` seconds, and serves a promotion or rollback without a restart.
``MLOPS_SERVE_SEGMENTS`` (set by ``mlops serve --segment``) narrows a segmented use case's
service to those segments: only their models are loaded and only their records are routed.
"""

from __future__ import annotations

import os
from typing import Annotated, Any

import bentoml
from pydantic import BaseModel, Field, WithJsonSchema
from starlette.responses import Response

from mlops_assets.serving.http import JsonOnlyMiddleware
from mlops_assets.serving.metrics import batch_metrics, observe_batch
from mlops_assets.serving.options import ServingOptions
from mlops_assets.serving.records import columns_json_schema, records_json_schema
from mlops_assets.serving.routing import (
    follow_segment_champions,
    parse_segment_models,
    router_for_models,
    segment_model_attributes,
    segmented_columns_json_schema,
    segmented_records_json_schema,
    served_segments,
)
from mlops_assets.serving.runtime import REQUEST_ID_HEADER, ServingRuntime
from mlops_assets.specs import load_specs


class BentoArgs(BaseModel):
    """Build arguments: fixed in the bento when the ``champion_bento`` asset builds it."""

    use_case: str = Field(default_factory=lambda: os.environ.get("MLOPS_USE_CASE", "bigmart_sales"))
    model_tag: str | None = Field(default_factory=lambda: os.environ.get("MLOPS_MODEL_TAG"))
    segment_models: str | None = None  # segmented use cases: "segment=model_tag,..."


ARGS = bentoml.use_arguments(BentoArgs)
OPTIONS = ServingOptions.from_env()
SPEC = served_segments(load_specs()[ARGS.use_case], OPTIONS.segments)  # all, or those asked for

SEGMENT_MODELS = parse_segment_models(SPEC, ARGS.segment_models)  # {} without segments
RECORDS_SCHEMA = (
    segmented_records_json_schema(SPEC, OPTIONS.max_records)
    if SPEC.segments
    else records_json_schema(SPEC, OPTIONS.max_records)
)

Records = Annotated[list[Any], WithJsonSchema(RECORDS_SCHEMA)]
COLUMNS_SCHEMA = (
    segmented_columns_json_schema(SPEC, OPTIONS.max_records)
    if SPEC.segments
    else columns_json_schema(SPEC, OPTIONS.max_records)
)
Columns = Annotated[dict[str, Any], WithJsonSchema(COLUMNS_SCHEMA)]

batch_metrics()  # registered at import, as BentoML expects of service metrics


class PredictResponse(BaseModel):
    """An answer: one prediction per record, in order, with the record's ids and the model."""

    request_id: str
    model_name: str
    model_version: str
    predictions: list[Any]
    ids: list[dict[str, Any]] | dict[str, list[Any]]
    segments: list[str] | None = None  # segmented use cases: the segment of each record
    models: dict[str, dict[str, str]] | None = None  # and each answering segment's model


@bentoml.service(
    name=f"{SPEC.name}_service",
    workers=OPTIONS.workers,
    traffic={"timeout": 120},
    logging={"access": {"enabled": False}},
    labels={"use_case": SPEC.name},
)
@segment_model_attributes(SEGMENT_MODELS)
class ChampionService:
    """Predictions of the registered champion for raw records, checked against the spec.

    A segmented use case's service holds every segment's champion (``model_<segment>``) and
    routes each record by its fields (``mlops_assets.serving.routing``).
    """

    model = (
        None
        if SPEC.segments
        else bentoml.models.BentoModel(ARGS.model_tag or f"{SPEC.name}:latest")
    )

    def __init__(self) -> None:
        import bentoml.sklearn

        if SPEC.segments:
            models = {name: getattr(self, f"model_{name}") for name in SEGMENT_MODELS}
            self.runtime = router_for_models(SPEC, models, OPTIONS, on_batch=observe_batch)
        else:
            labels = dict(self.model.info.labels)
            self.runtime = ServingRuntime.for_model(
                SPEC,
                bentoml.sklearn.load_model(self.model),
                labels,
                fallback_version=str(self.model.tag.version),
                options=OPTIONS,
                on_batch=observe_batch,
            )
        self.follower = None
        if OPTIONS.follow_champion:
            from mlops_assets.serving.follow import follow_champion

            if SPEC.segments:  # one follower per segment's champion alias
                self.follower = follow_segment_champions(self.runtime, OPTIONS.champion_poll_s)
            else:
                self.follower = follow_champion(SPEC, self.runtime, OPTIONS.champion_poll_s)

    @bentoml.api(route="/predict")
    async def predict(self, records: Records, ctx: bentoml.Context) -> PredictResponse:
        """Score raw records: 200 with predictions, or 422 naming every bad field."""
        answer = await self.runtime.answer(records, ctx.request.headers.get(REQUEST_ID_HEADER))
        ctx.response.status_code = answer.status
        ctx.response.metadata[REQUEST_ID_HEADER] = answer.request_id
        return Response(answer.body, status_code=answer.status, media_type="application/json")

    @bentoml.api(route="/predict_columns")
    async def predict_columns(self, columns: Columns, ctx: bentoml.Context) -> PredictResponse:
        """Bulk scoring: the same records as columns; ids are answered as columns too."""
        answer = await self.runtime.answer_columns(
            columns, ctx.request.headers.get(REQUEST_ID_HEADER)
        )
        ctx.response.status_code = answer.status
        ctx.response.metadata[REQUEST_ID_HEADER] = answer.request_id
        return Response(answer.body, status_code=answer.status, media_type="application/json")

    @bentoml.on_shutdown
    def flush_prediction_log(self) -> None:
        """Write the queued prediction log before the worker exits (SIGTERM included)."""
        if self.follower is not None:
            self.follower.stop()
        self.runtime.close()


ChampionService.add_asgi_middleware(JsonOnlyMiddleware, json_paths=("/predict", "/predict_columns"))
