"""A use case's champions behind ``POST /predict``: a thin BentoML shell.

Which use case and models come from the bento's build arguments (``use_case``, ``model_tags``:
one BentoML model per model slot, set by the ``champion_bento`` asset), or when serving this
folder directly from ``MLOPS_USE_CASE`` / ``MLOPS_MODEL_TAG``. Cleaning, validation, routing,
batching, scoring and the prediction log live in ``mlops_assets.serving`` (the code training
uses), not here; the environment is resolved once, at start
(:class:`mlops_assets.environment.Environment`: ``MLOPS_SERVING_*``, ``MLOPS_PREDICTION_LOG*``,
``MLOPS_FOLLOW_CHAMPION``, ``MLOPS_SERVE_SEGMENTS`` and the store locations).
"""

from __future__ import annotations

from typing import Annotated, Any

import bentoml
from pydantic import BaseModel, Field, WithJsonSchema
from starlette.responses import Response

from mlops_assets.environment import Environment
from mlops_assets.serving.bodies import json_body
from mlops_assets.serving.follow import follow_champions
from mlops_assets.serving.http import GuardSettings, RequestGuard
from mlops_assets.serving.metrics import (
    batch_metrics,
    observe_batch,
    route_labelled_traffic_metrics,
)
from mlops_assets.serving.openapi import service_document
from mlops_assets.serving.routing import columns_schema, records_schema, served_segments
from mlops_assets.serving.runtime import REQUEST_ID_HEADER
from mlops_assets.serving.worker import (
    declare_slot_models,
    exit_with_parent,
    runtime_for_models,
    slot_model_tags,
)
from mlops_assets.specs.catalog import use_case_specs

ENV = Environment.from_env()
OPTIONS = ENV.serving


class BentoArgs(BaseModel):
    """Build arguments: fixed in the bento when the ``champion_bento`` asset builds it."""

    use_case: str = Field(default=OPTIONS.use_case)
    model_tags: list[str] = Field(default_factory=list)  # one per slot, in spec order


ARGS = bentoml.use_arguments(BentoArgs)
FULL_SPEC = use_case_specs(ENV.specs_dirs)[ARGS.use_case]
SPEC = served_segments(FULL_SPEC, OPTIONS.segments)  # every segment, or those asked for
MODEL_TAGS = slot_model_tags(FULL_SPEC, SPEC, ARGS.model_tags, OPTIONS.model_tag)

Records = Annotated[list[Any], WithJsonSchema(records_schema(SPEC, OPTIONS.max_records))]
Columns = Annotated[dict[str, Any], WithJsonSchema(columns_schema(SPEC, OPTIONS.max_records))]
RecordsBody = json_body("RecordsBody", "records", Records, list)  # orjson, BentoML's as fallback
ColumnsBody = json_body("ColumnsBody", "columns", Columns, dict)

batch_metrics()  # registered at import, as BentoML expects of service metrics
route_labelled_traffic_metrics()  # before BentoML builds the app: labels by route, not path


class PredictResponse(BaseModel):
    """An answer: one prediction per record, in order, with the record's ids and the model."""

    request_id: str
    model_name: str
    model_version: str
    predictions: list[Any]
    ids: list[dict[str, Any]]
    segments: list[str] | None = None  # segmented use cases: the segment of each record
    models: dict[str, dict[str, str]] | None = None  # and each answering segment's model


class PredictColumnsResponse(BaseModel):
    """A columnar answer: predictions in row order, the rows' ids as columns."""

    request_id: str
    model_name: str
    model_version: str
    predictions: list[Any]
    ids: dict[str, list[Any]]


@bentoml.service(
    name=f"{SPEC.name}_service",
    workers=OPTIONS.workers,
    traffic={"timeout": 120},
    logging={"access": {"enabled": False}},
    labels={"use_case": SPEC.name},
)
@declare_slot_models(MODEL_TAGS)
class ChampionService:
    """Predictions of the registered champions for raw records, checked against the spec.

    The service holds one champion per model slot (``model_<n>`` attributes) and routes each
    record to its slot by its fields (``mlops_assets.serving.routing``).
    """

    def __init__(self) -> None:
        exit_with_parent()  # SIGKILL of `bentoml serve` must not leave this worker serving
        models = {segment: getattr(self, attribute) for segment, attribute in self.slot_models}
        self.runtime = runtime_for_models(SPEC, models, ENV, on_batch=observe_batch)
        self.follower = None
        if OPTIONS.follow_champion:
            self.follower = follow_champions(self.runtime, OPTIONS.champion_poll_s, ENV.tracking())

    @bentoml.api(route="/predict", input_spec=RecordsBody)
    async def predict(self, records: Records, ctx: bentoml.Context) -> PredictResponse:
        """Score raw records: 200 with predictions, or 422 naming every bad field."""
        answer = await self.runtime.answer(records, ctx.request.headers.get(REQUEST_ID_HEADER))
        ctx.response.status_code = answer.status
        ctx.response.metadata[REQUEST_ID_HEADER] = answer.request_id
        return Response(answer.body, status_code=answer.status, media_type="application/json")

    @bentoml.api(route="/predict_columns", input_spec=ColumnsBody)
    async def predict_columns(
        self, columns: Columns, ctx: bentoml.Context
    ) -> PredictColumnsResponse:
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


TITLE, DESCRIBE = service_document(SPEC, OPTIONS)
ChampionService.add_asgi_middleware(
    RequestGuard, settings=GuardSettings.for_service(SPEC, OPTIONS, TITLE, DESCRIBE)
)
