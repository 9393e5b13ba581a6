"""What a service worker holds: the scorer, the micro-batcher and the prediction log.

``bento/service.py`` stays a thin BentoML shell around :class:`ServingRuntime`, so the request
path (shape checks, batching, scoring, logging, answer bodies) is tested without a server.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlops_assets import settings
from mlops_assets.serving.batching import MicroBatcher
from mlops_assets.serving.options import ServingOptions
from mlops_assets.serving.prediction_log import PredictionLog
from mlops_assets.serving.records import (
    RequestProblem,
    as_column_location,
    column_structure_problems,
    columns_of,
    structure_problems,
)
from mlops_assets.serving.scoring import Accepted, Rejected, Scorer
from mlops_assets.specs.model import UseCaseSpec
from mlops_assets.storage.objectstore import open_store

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "x-request-id"


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status and JSON body (already encoded)."""

    status: int
    body: bytes
    request_id: str


class ServingRuntime:
    """The request path of one worker.

    Args:
        spec: The use case.
        pipeline: The champion's pipeline.
        model_name: Registered MLflow model name (from the BentoML model's labels).
        model_version: Registered MLflow model version.
        options: Limits, batching and logging options.
        log: The prediction log, or ``None`` to log nothing.
        on_batch: Metrics hook of the batcher (requests, records per batch).
    """

    def __init__(
        self,
        spec: UseCaseSpec,
        pipeline: Any,
        model_name: str,
        model_version: str,
        options: ServingOptions,
        log: PredictionLog | None = None,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> None:
        self.spec = spec
        self.options = options
        self.model_name = model_name
        self.model_version = model_version
        self.log = log
        self._thread_pools: Any = None
        self.scorer = Scorer(
            spec, pipeline, model_name, model_version, on_scored=log.append if log else None
        )
        self.swaps = 0
        self.batcher: MicroBatcher[tuple[str, dict[str, list[Any]]], Accepted | Rejected] = (
            MicroBatcher(
                self._score_batch,
                max_batch_size=options.max_batch_records,
                max_wait_ms=options.batch_wait_ms,
                on_batch=on_batch,
            )
        )

    @classmethod
    def for_model(
        cls,
        spec: UseCaseSpec,
        pipeline: Any,
        labels: dict[str, str],
        fallback_version: str,
        options: ServingOptions,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> ServingRuntime:
        """A worker's runtime for a BentoML model; the log goes under the configured storage."""
        log = None
        if options.prediction_log:
            log = PredictionLog(
                open_store(settings.storage_uri()),
                spec,
                flush_interval_s=options.log_flush_s,
                max_rows=options.log_max_rows,
                database_url=settings.prediction_log_database(),
            )
        return cls(
            spec,
            pipeline,
            labels.get("mlflow_model_name", spec.registered_model_name()),
            labels.get("mlflow_model_version", fallback_version),
            options,
            log=log,
            on_batch=on_batch,
        )

    def swap_model(self, pipeline: Any, model_name: str, model_version: str) -> None:
        """Answer from another model from the next batch on; batches in flight finish on the old.

        One attribute assignment (atomic under the GIL) replaces the scorer: a batch reads the
        scorer once, and every answer names the version that scored it, so no request fails or
        is attributed to the wrong model during a switch.
        """
        self.scorer = Scorer(
            self.spec,
            pipeline,
            model_name,
            model_version,
            on_scored=self.log.append if self.log else None,
        )
        self.model_name, self.model_version = model_name, model_version
        self.swaps += 1

    def _score_batch(
        self, items: list[tuple[str, dict[str, list[Any]]]]
    ) -> list[Accepted | Rejected]:
        scorer = self.scorer
        requests = [columns for _, columns in items]
        ids = [request_id for request_id, _ in items]
        first = self.spec.input_columns[0].name
        if sum(len(columns[first]) for columns in requests) >= self.options.parallel_records:
            return scorer.score_requests(requests, ids)
        with self._limited_threads():
            return scorer.score_requests(requests, ids)

    def _limited_threads(self) -> Any:
        """Native thread pools capped at ``options.threads`` for the duration of a small batch."""
        if self._thread_pools is None:
            from threadpoolctl import ThreadpoolController

            self._thread_pools = ThreadpoolController()
        return self._thread_pools.limit(limits=self.options.threads)

    async def answer(self, records: Any, request_id: str | None = None) -> Answer:
        """Check, score and log a records body; every bad input is a 422 naming the field."""
        request_id = request_id or uuid.uuid4().hex
        problems = structure_problems(records, self.spec, self.options.max_records)
        if problems:
            return self._rejected(request_id, problems, len(problems))
        outcome = await self.batcher.submit(
            (request_id, columns_of(records, self.spec)), size=len(records)
        )
        if isinstance(outcome, Rejected):
            return self._rejected(request_id, outcome.problems, outcome.total)
        return self._accepted(request_id, outcome, _id_records(outcome))

    async def answer_columns(self, columns: Any, request_id: str | None = None) -> Answer:
        """Check, score and log a columnar body (bulk scoring); ids are answered as columns."""
        request_id = request_id or uuid.uuid4().hex
        problems = column_structure_problems(columns, self.spec, self.options.max_records)
        if problems:
            return self._rejected(request_id, problems, len(problems))
        size = len(columns[self.spec.input_columns[0].name])
        outcome = await self.batcher.submit((request_id, columns), size=size)
        if isinstance(outcome, Rejected):
            renamed = [as_column_location(p) for p in outcome.problems]
            return self._rejected(request_id, renamed, outcome.total)
        return self._accepted(request_id, outcome, outcome.ids)

    def _accepted(self, request_id: str, outcome: Accepted, ids: Any) -> Answer:
        body: dict[str, Any] = {
            "request_id": request_id,
            "model_name": outcome.model_name or self.model_name,
            "model_version": outcome.model_version or self.model_version,
            "predictions": outcome.predictions,
            "ids": ids,
        }
        if outcome.probabilities is not None:
            body["probabilities"] = outcome.probabilities
        return Answer(200, json.dumps(body).encode(), request_id)

    def _rejected(self, request_id: str, problems: list[RequestProblem], total: int) -> Answer:
        message = Rejected(problems, total).message()
        body = {
            "error": message,
            "problems": [str(p) for p in problems],
            "problem_count": total,
            "detail": [p.as_dict() for p in problems],
            "request_id": request_id,
        }
        return Answer(422, json.dumps(body).encode(), request_id)

    def close(self) -> None:
        """Stop batching and write the rest of the prediction log (called at shutdown)."""
        self.batcher.close()
        if self.log is not None:
            self.log.close()
            logger.info(
                "prediction log closed: %d rows in %d files",
                self.log.rows_written,
                self.log.files_written,
            )


def _id_records(outcome: Accepted) -> list[dict[str, Any]]:
    """Each record's ids as an object, from the columns the scorer returns."""
    if not outcome.ids:
        return [{} for _ in outcome.predictions]
    names = list(outcome.ids)
    rows = zip(*outcome.ids.values(), strict=True)
    return [dict(zip(names, row, strict=True)) for row in rows]
