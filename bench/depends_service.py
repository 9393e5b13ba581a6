"""Variant (c) of the serving benchmark: BentoML adaptive batching through ``bentoml.depends``.

BentoML 1.4's batchable APIs take and return lists aligned with the batch (a batchable method
returning a dict fails), so an outer service checks each request's shape and answers it, and a
batchable inner service, in a process of its own, scores the records of many requests in one
call with the same :class:`~mlops_assets.serving.scoring.Scorer` as the bento. The benchmark
compares it with the bento's in-worker micro-batcher (``mlops_assets/serving/batching.py``).

Run: ``BENCH_MODEL_TAG=<model tag> bentoml serve depends_service:DependsService`` from ``bench/``.
"""

from __future__ import annotations

import os
from typing import Any

import bentoml
from starlette.responses import JSONResponse

from mlops_assets.serving.records import columns_of, structure_problems
from mlops_assets.specs import use_case_specs

SPEC = use_case_specs()["bigmart_sales"]
MODEL_TAG = os.environ.get("BENCH_MODEL_TAG", f"{SPEC.name}:latest")


@bentoml.service(workers=1, logging={"access": {"enabled": False}})
class BatchScorer:
    """Scores records of many requests together (BentoML merges the lists)."""

    model = bentoml.models.BentoModel(MODEL_TAG)

    def __init__(self) -> None:
        import bentoml.sklearn

        from mlops_assets.serving.scoring import Accepted, Scorer

        self.accepted = Accepted
        self.scorer = Scorer(SPEC, bentoml.sklearn.load_model(self.model), SPEC.name, "bench")

    @bentoml.api(batchable=True, max_batch_size=2048, max_latency_ms=60_000)
    def score(self, records: list[dict[str, Any]]) -> list[float | None]:
        """One prediction per record, ``None`` for a record that fails the spec."""
        outcome = self.scorer.score_requests([columns_of(records, SPEC)], ["batch"])[0]
        if isinstance(outcome, self.accepted):
            return outcome.predictions
        return [None] * len(records)


@bentoml.service(
    workers=int(os.environ.get("MLOPS_SERVING_WORKERS", "1")),
    logging={"access": {"enabled": False}},
)
class DependsService:
    """``POST /predict`` as the bento answers it, scoring through the batchable inner service."""

    scorer = bentoml.depends(BatchScorer)

    @bentoml.api(route="/predict")
    async def predict(self, records: list[Any]) -> Any:
        """Shape checks here, scoring in the inner service."""
        problems = structure_problems(records, SPEC, 10_000)
        if problems:
            return JSONResponse({"error": str(problems[0])}, status_code=422)
        predictions = await self.scorer.to_async.score(records)
        if any(p is None for p in predictions):
            return JSONResponse({"error": "a record fails the spec"}, status_code=422)
        return {"model_name": SPEC.name, "predictions": predictions}
