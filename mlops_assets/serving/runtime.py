"""What a service worker holds: one runtime per model slot, and the routing between them.

``bento/service.py`` stays a thin BentoML shell around :class:`ServingRuntime`, so the request
path (shape checks, routing, batching, scoring, logging, answer bodies) is tested without a
server. Every use case is served by the same code: a use case has one or more model slots (an
unsegmented one is a single slot), each a :class:`SlotRuntime` (scorer, micro-batcher, prediction
log), and :class:`ServingRuntime` routes each record to its slot (see
:mod:`mlops_assets.serving.routing`; with one slot every record goes to it).

Records of one request may go to different slots: each slot scores its share through its own
batcher, and the answer puts every prediction back in record order, naming for each record the
segment that answered (``segments``) and each segment's model and version (``models``). A request
is answered 422 as a whole when any of its records has a problem, and then nothing of it is
scored or logged: a request whose records go to several slots has every share checked before any
share is scored (its cleaning runs twice; a one-slot request's once).

A columnar body (``/predict_columns``) is one slot for all its rows: its column names choose it,
and its answer names that slot's model (no per-row ``segments``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from mlops_assets.environment import ServingOptions
from mlops_assets.features.history import StoredHistory
from mlops_assets.prediction_log import PredictionLog
from mlops_assets.serving.batching import MicroBatcher
from mlops_assets.serving.compiled import DualScorer, scorer_for
from mlops_assets.serving.records import (
    RequestProblem,
    as_column_location,
    column_problem,
    column_structure_problems,
    columns_of,
    structure_problems,
)
from mlops_assets.serving.routing import (
    choose_slot,
    id_records,
    no_slot_message,
    renumbered,
    route_records,
    trim_to_slot,
)
from mlops_assets.serving.scoring import Accepted, Rejected
from mlops_assets.specs.model import UseCaseSpec

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "x-request-id"


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status and JSON body (already encoded)."""

    status: int
    body: bytes
    request_id: str


def encode_json(body: Any) -> bytes:
    """An answer's JSON: orjson, or the standard library for what orjson refuses.

    orjson refuses text that is not valid UTF-8 (a lone surrogate a client sent escaped) and
    integers beyond 64 bits; ``json`` writes both.
    """
    try:
        return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    except TypeError:
        return json.dumps(body).encode()


class SlotRuntime:
    """The request path of one model slot: its scorer, micro-batcher and prediction log.

    Args:
        spec: The slot's view of the use case (a segment's, or the whole unsegmented one).
        pipeline: The champion's pipeline.
        model_name: Registered MLflow model name (from the BentoML model's labels).
        model_version: Registered MLflow model version.
        options: Limits, batching and logging options.
        log: The prediction log, or ``None`` to log nothing.
        on_batch: Metrics hook of the batcher (requests, records per batch).
        history: Where a forecast's lags are read from (unused for other tasks).
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
        history: StoredHistory | None = None,
    ) -> None:
        self.spec = spec
        self.options = options
        self.model_name = model_name
        self.model_version = model_version
        self.log = log
        self.history = history
        self._thread_pools: Any = None
        with self._limited_threads():  # its check on probe records is a small batch
            self.scorer = self._scorer(pipeline, model_name, model_version)
        self.swaps = 0
        self.batcher: MicroBatcher[tuple[str, dict[str, list[Any]]], Accepted | Rejected] = (
            MicroBatcher(
                self._score_batch,
                max_batch_size=options.max_batch_records,
                max_wait_ms=options.batch_wait_ms,
                on_batch=on_batch,
            )
        )

    def _scorer(self, pipeline: Any, model_name: str, model_version: str) -> DualScorer:
        """Both executors of a model: compiled for small batches, vectorised for large ones."""
        return scorer_for(
            self.spec,
            pipeline,
            model_name,
            model_version,
            on_scored=self.log.append if self.log else None,
            history=self.history,
            small_records=self.options.parallel_records,
        )

    def swap_model(self, pipeline: Any, model_name: str, model_version: str) -> None:
        """Answer from another model from the next batch on; batches in flight finish on the old.

        One attribute assignment (atomic under the GIL) replaces the scorer: a batch reads the
        scorer once, and every answer names the version that scored it, so no request fails or
        is attributed to the wrong model during a switch.
        """
        self.scorer = self._scorer(pipeline, model_name, model_version)
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

    async def submit(self, request_id: str, columns: dict[str, list[Any]]) -> Accepted | Rejected:
        """Score a request's columns (already shape-checked) with whatever else is queued."""
        size = len(columns[self.spec.input_columns[0].name])
        return await self.batcher.submit((request_id, columns), size=size)

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


class ServingRuntime:
    """The request path of a service: records routed to their model slots, answers merged.

    Args:
        spec: The whole use case (narrowed to the segments served, if any).
        slots: One runtime per slot, keyed by segment (``None`` for an unsegmented use case).
        problem_limit: Problems reported per rejected request.
    """

    def __init__(
        self,
        spec: UseCaseSpec,
        slots: Mapping[str | None, SlotRuntime],
        problem_limit: int = 20,
    ) -> None:
        wanted = [view.segment for view in spec.segment_specs()]
        missing = [name for name in wanted if name not in slots]
        if missing:
            raise ValueError(f"{spec.name}: a runtime is needed for every slot ({missing})")
        self.spec = spec
        self.slots = {name: slots[name] for name in wanted}
        self.views = {name: runtime.spec for name, runtime in self.slots.items()}
        self.known = {c.name for c in spec.input_columns}
        self.problem_limit = problem_limit
        self.max_records = next(iter(self.slots.values())).options.max_records

    @property
    def routed(self) -> bool:
        """Whether records are routed among several slots (answers then name the segment)."""
        return bool(self.spec.segments)

    @property
    def models(self) -> dict[str | None, dict[str, str]]:
        """Each slot's model name and version, as answers report them."""
        return {
            name: {"model_name": slot.model_name, "model_version": slot.model_version}
            for name, slot in self.slots.items()
        }

    async def answer(self, records: Any, request_id: str | None = None) -> Answer:
        """Route, check, score and log a records body; every bad input is a 422 naming it."""
        request_id = request_id or uuid.uuid4().hex
        if not isinstance(records, list) or not records or len(records) > self.max_records:
            first = next(iter(self.views.values()))
            problems = structure_problems(records, first, self.max_records)
            return self._rejected(request_id, problems, merged=self.routed)
        groups, found = route_records(records, self.spec)
        shares: dict[str | None, list[Any]] = {}
        for name, rows in groups.items():
            view = self.views[name]
            shares[name] = (
                [trim_to_slot(records[row], view, self.known) for row in rows]
                if self.routed
                else records  # one slot uses every known field: nothing to trim
            )
            problems = structure_problems(shares[name], view, self.max_records)
            found.extend(renumbered(p, rows) for p in problems)
        if not found and len(groups) > 1:  # all shares pass, or none is scored and logged
            for name, rows in groups.items():
                checked = self.slots[name].scorer.check(columns_of(shares[name], self.views[name]))
                found.extend(renumbered(p, rows) for p in checked)
        if found:
            return self._rejected(request_id, found, merged=self.routed)
        names = list(groups)
        outcomes = await asyncio.gather(
            *(
                self.slots[name].submit(request_id, columns_of(shares[name], self.views[name]))
                for name in names
            )
        )
        rejected = [
            renumbered(p, groups[name])
            for name, outcome in zip(names, outcomes, strict=True)
            if isinstance(outcome, Rejected)
            for p in outcome.problems
        ]
        if rejected:
            total = sum(o.total for o in outcomes if isinstance(o, Rejected))
            return self._rejected(request_id, rejected, total, merged=self.routed)
        accepted = dict(zip(names, outcomes, strict=True))
        return self._merged(request_id, len(records), groups, accepted)  # type: ignore[arg-type]

    async def answer_columns(self, columns: Any, request_id: str | None = None) -> Answer:
        """A columnar body (bulk scoring): its column names choose one slot for all its rows."""
        request_id = request_id or uuid.uuid4().hex
        view = choose_slot(columns if isinstance(columns, dict) else {}, self.spec)
        if view is None and isinstance(columns, dict):
            message = no_slot_message(columns, self.spec).replace("carries", "carry", 1)
            return self._rejected(request_id, [column_problem(None, message)])
        view = view or next(iter(self.views.values()))
        body = trim_to_slot(columns, view, self.known) if isinstance(columns, dict) else columns
        problems = column_structure_problems(body, view, self.max_records)
        if problems:
            return self._rejected(request_id, problems)
        outcome = await self.slots[view.segment].submit(request_id, body)
        if isinstance(outcome, Rejected):
            renamed = [as_column_location(p) for p in outcome.problems]
            return self._rejected(request_id, renamed, outcome.total)
        size = len(body[view.input_columns[0].name])
        return self._merged(
            request_id, size, {view.segment: list(range(size))}, {view.segment: outcome}, True
        )

    def _merged(
        self,
        request_id: str,
        size: int,
        groups: Mapping[str | None, list[int]],
        accepted: Mapping[str | None, Accepted],
        as_columns: bool = False,
    ) -> Answer:
        if len(groups) == 1:  # one slot answered every record, in order: its lists as they are
            ((name, outcome),) = accepted.items()
            predictions = outcome.predictions
            ids = outcome.ids if as_columns else id_records(outcome)
            segments = [name or ""] * size
            probabilities = outcome.probabilities
        else:
            predictions, ids, segments, probabilities = self._interleaved(size, groups, accepted)
        used = [name for name in self.slots if name in groups]
        models = {  # the version that scored (a follower may swap models between batches)
            name: {
                "model_name": accepted[name].model_name or self.models[name]["model_name"],
                "model_version": accepted[name].model_version or self.models[name]["model_version"],
            }
            for name in used
        }
        body: dict[str, Any] = {
            "request_id": request_id,
            "model_name": ",".join(m["model_name"] for m in models.values()),
            "model_version": ",".join(m["model_version"] for m in models.values()),
            "predictions": predictions,
            "ids": ids,
        }
        if self.routed and not as_columns:  # a columnar body has one slot: named by model_name
            body["segments"] = segments
            body["models"] = models
        if probabilities is not None:
            body["probabilities"] = probabilities
        return Answer(200, encode_json(body), request_id)

    @staticmethod
    def _interleaved(
        size: int, groups: Mapping[str | None, list[int]], accepted: Mapping[str | None, Accepted]
    ) -> tuple[list[Any], list[dict[str, Any]], list[str], list[Any] | None]:
        """Several slots' answers put back in the request's record order."""
        predictions: list[Any] = [None] * size
        ids: list[dict[str, Any]] = [{} for _ in range(size)]
        segments: list[str] = [""] * size
        probabilities: list[Any] | None = None
        for name, rows in groups.items():
            outcome = accepted[name]
            records_ids = id_records(outcome)
            for position, row in enumerate(rows):
                predictions[row] = outcome.predictions[position]
                ids[row] = records_ids[position]
                segments[row] = name or ""
            if outcome.probabilities is not None:
                probabilities = probabilities or [None] * size
                for position, row in enumerate(rows):
                    probabilities[row] = outcome.probabilities[position]
        return predictions, ids, segments, probabilities

    def _rejected(
        self,
        request_id: str,
        problems: list[RequestProblem],
        total: int | None = None,
        merged: bool = False,
    ) -> Answer:
        """A 422 naming the problems; ``total`` counts those not shown.

        ``merged``: the problems of a routed request (its records' shares checked by several
        slots) are put in record order and cut to ``problem_limit``. Otherwise they are shown
        as the one slot's checks reported them (the answer of an unsegmented use case).
        """
        total = max(total or 0, len(problems))
        shown = sorted(problems)[: self.problem_limit] if merged else problems
        body = {
            "error": Rejected(shown, total).message(),
            "problems": [str(p) for p in shown],
            "problem_count": total,
            "detail": [p.as_dict() for p in shown],
            "request_id": request_id,
        }
        return Answer(422, encode_json(body), request_id)

    def close(self) -> None:
        """Stop every slot's batcher and write the rest of its prediction log."""
        for slot in self.slots.values():
            slot.close()
