"""One service for a segmented use case: each record goes to the segment whose fields it carries.

A segmented use case (``segments`` in its spec) has one champion per segment, each trained on a
subset of the features. The service holds one :class:`~mlops_assets.serving.runtime.ServingRuntime`
per segment and routes by the fields a record carries, never by their values:

- a record goes to the **first segment, in spec order,** whose fields (the use case's id columns
  and the segment's features) are all present in it, null values included ("present" means the
  key is there; send ``null`` for an unknown value as usual);
- the fields of the use case that the chosen segment does not use are ignored, so a record
  carrying every field goes to the first segment;
- a record that carries the fields of no segment is a 422 naming, per segment, the fields it
  lacks; fields unknown to the use case are reported by the chosen segment's checks as usual.

Records of one request may go to different segments: each segment scores its share through its
own batcher, and the answer puts every prediction back in record order, naming for each record
the segment that answered (``segments``) and each segment's model and version (``models``).
A request is answered 422 as a whole when any of its records has a problem, and then nothing
of it is scored or logged: a request whose records go to several segments has every share
checked before any share is scored (its cleaning runs twice; a one-segment request's once).

A service can answer for some segments only (``MLOPS_SERVE_SEGMENTS``, set by
``mlops serve --segment``): :func:`served_segments` narrows the spec, so routing, the JSON
schema and the models loaded know only those segments.

A columnar body (``/predict_columns``) is one segment for all its rows: its column names choose it.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mlops_assets.serving.records import (
    RequestProblem,
    column_problem,
    columns_of,
    problem,
    structure_problems,
)
from mlops_assets.serving.runtime import Answer, ServingRuntime
from mlops_assets.serving.scoring import Accepted, Rejected
from mlops_assets.specs.model import UseCaseSpec


def served_segments(spec: UseCaseSpec, names: Sequence[str]) -> UseCaseSpec:
    """The use case narrowed to the segments ``names`` (spec order kept); all of them if empty.

    Raises:
        ValueError: ``names`` given for a use case without segments, or a name it lacks.
    """
    if not names:
        return spec
    if not spec.segments:
        raise ValueError(f"MLOPS_SERVE_SEGMENTS: {spec.name} has no segments")
    unknown = [name for name in names if name not in spec.segment_names]
    if unknown:
        raise ValueError(
            f"MLOPS_SERVE_SEGMENTS: {spec.name} has no segment {', '.join(unknown)} "
            f"(segments: {', '.join(spec.segment_names)})"
        )
    return spec.model_copy(update={"segments": [s for s in spec.segments if s.name in names]})


def segment_fields(view: UseCaseSpec) -> list[str]:
    """The fields a record must carry to be routed to a segment (ids, then its features)."""
    return [c.name for c in view.input_columns]


def choose_segment(fields: Iterable[str], spec: UseCaseSpec) -> str | None:
    """The first segment (spec order) whose fields are all among ``fields``, else ``None``."""
    present = set(fields)
    for view in spec.segment_specs():
        if set(segment_fields(view)) <= present:
            return view.segment
    return None


def missing_by_segment(fields: Iterable[str], spec: UseCaseSpec) -> dict[str, list[str]]:
    """For each segment, the fields it needs that ``fields`` lacks (in spec order)."""
    present = set(fields)
    return {
        str(view.segment): [name for name in segment_fields(view) if name not in present]
        for view in spec.segment_specs()
    }


def no_segment_message(fields: Iterable[str], spec: UseCaseSpec) -> str:
    """Why no segment can answer: each segment with the fields missing for it."""
    missing = missing_by_segment(fields, spec)
    needs = "; ".join(f"{name} needs {', '.join(lacks)}" for name, lacks in missing.items())
    return f"carries the fields of no segment ({needs})"


def trim_to_segment(
    record: Mapping[str, Any], view: UseCaseSpec, known: set[str]
) -> dict[str, Any]:
    """The record's fields the segment uses, plus fields unknown to the use case (reported)."""
    wanted = set(segment_fields(view))
    return {k: v for k, v in record.items() if k in wanted or k not in known}


def route_records(
    records: Sequence[Any], spec: UseCaseSpec
) -> tuple[dict[str, list[int]], list[RequestProblem]]:
    """Record positions per segment, and a problem for each record that no segment can take."""
    groups: dict[str, list[int]] = {}
    found: list[RequestProblem] = []
    for row, record in enumerate(records):
        if type(record) is not dict:
            found.append(problem(row, None, "expected an object"))
            continue
        segment = choose_segment(record, spec)
        if segment is None:
            found.append(problem(row, None, no_segment_message(record, spec)))
        else:
            groups.setdefault(segment, []).append(row)
    return groups, found


def id_records(outcome: Accepted) -> list[dict[str, Any]]:
    """Each record's ids as an object, from the columns a segment's scorer returns."""
    if not outcome.ids:
        return [{} for _ in outcome.predictions]
    names = list(outcome.ids)
    return [dict(zip(names, row, strict=True)) for row in zip(*outcome.ids.values(), strict=True)]


def renumbered(found: RequestProblem, rows: Sequence[int]) -> RequestProblem:
    """A problem of a segment's share of a request, numbered as in the whole request."""
    if found.row < 0:
        return found
    row = rows[found.row]
    location = found.location.replace(f"records[{found.row}]", f"records[{row}]", 1)
    return RequestProblem(row, found.column, location, found.message)


class SegmentRouter:
    """The request path of a segmented use case's service: routes records to segment runtimes.

    Args:
        spec: The whole (segmented) use case.
        runtimes: One runtime per segment, each built on that segment's view and champion.
        problem_limit: Problems reported per rejected request.
    """

    def __init__(
        self, spec: UseCaseSpec, runtimes: Mapping[str, ServingRuntime], problem_limit: int = 20
    ) -> None:
        missing = [name for name in spec.segment_names if name not in runtimes]
        if not spec.segments or missing:
            raise ValueError(f"{spec.name}: a runtime is needed for every segment ({missing})")
        self.spec = spec
        self.runtimes = dict(runtimes)
        self.views = {name: runtime.spec for name, runtime in self.runtimes.items()}
        self.known = {c.name for c in spec.input_columns}
        self.problem_limit = problem_limit
        first = self.runtimes[spec.segment_names[0]]
        self.max_records = first.options.max_records

    @property
    def models(self) -> dict[str, dict[str, str]]:
        """Each segment's model name and version, as answers report them."""
        return {
            name: {"model_name": runtime.model_name, "model_version": runtime.model_version}
            for name, runtime in self.runtimes.items()
        }

    async def answer(self, records: Any, request_id: str | None = None) -> Answer:
        """Route, check, score and log a records body; every bad input is a 422 naming it."""
        request_id = request_id or uuid.uuid4().hex
        if not isinstance(records, list) or not records or len(records) > self.max_records:
            first = next(iter(self.views.values()))
            return self._rejected(request_id, structure_problems(records, first, self.max_records))
        groups, found = route_records(records, self.spec)
        shares: dict[str, list[dict[str, Any]]] = {}
        for name, rows in groups.items():
            view = self.views[name]
            shares[name] = [trim_to_segment(records[row], view, self.known) for row in rows]
            problems = structure_problems(shares[name], view, self.max_records)
            found.extend(renumbered(p, rows) for p in problems)
        names = list(groups)
        if not found and len(names) > 1:  # all shares pass, or none is scored and logged
            for name in names:
                columns = columns_of(shares[name], self.views[name])
                checked = self.runtimes[name].scorer.check(columns)
                found.extend(renumbered(p, groups[name]) for p in checked)
        if found:
            return self._rejected(request_id, found)
        outcomes = await asyncio.gather(
            *(
                self.runtimes[name].batcher.submit(
                    (request_id, columns_of(shares[name], self.views[name])),
                    size=len(shares[name]),
                )
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
            return self._rejected(request_id, rejected, total)
        accepted = dict(zip(names, outcomes, strict=True))
        return self._merged(request_id, len(records), groups, accepted)  # type: ignore[arg-type]

    async def answer_columns(self, columns: Any, request_id: str | None = None) -> Answer:
        """A columnar body: its column names choose one segment for all of its rows."""
        request_id = request_id or uuid.uuid4().hex
        if not isinstance(columns, dict):
            first = self.runtimes[self.spec.segment_names[0]]
            return await first.answer_columns(columns, request_id)
        segment = choose_segment(columns, self.spec)
        if segment is None:
            message = no_segment_message(columns, self.spec).replace("carries", "carry", 1)
            return self._rejected(request_id, [column_problem(None, message)])
        view = self.views[segment]
        return await self.runtimes[segment].answer_columns(
            trim_to_segment(columns, view, self.known), request_id
        )

    def _merged(
        self,
        request_id: str,
        size: int,
        groups: Mapping[str, list[int]],
        accepted: Mapping[str, Accepted],
    ) -> Answer:
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
                segments[row] = name
            if outcome.probabilities is not None:
                probabilities = probabilities or [None] * size
                for position, row in enumerate(rows):
                    probabilities[row] = outcome.probabilities[position]
        used = [name for name in self.spec.segment_names if name in groups]
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
            "segments": segments,
            "models": models,
        }
        if probabilities is not None:
            body["probabilities"] = probabilities
        return Answer(200, json.dumps(body).encode(), request_id)

    def _rejected(
        self, request_id: str, problems: list[RequestProblem], total: int | None = None
    ) -> Answer:
        problems = sorted(problems)
        total = max(total or 0, len(problems))
        shown = problems[: self.problem_limit]
        body = {
            "error": Rejected(shown, total).message(),
            "problems": [str(p) for p in shown],
            "problem_count": total,
            "detail": [p.as_dict() for p in shown],
            "request_id": request_id,
        }
        return Answer(422, json.dumps(body).encode(), request_id)

    def close(self) -> None:
        """Stop every segment's batcher and write the rest of its prediction log."""
        for runtime in self.runtimes.values():
            runtime.close()


def router_for_models(
    spec: UseCaseSpec,
    models: Mapping[str, Any],
    options: Any,
    on_batch: Any = None,
) -> SegmentRouter:
    """A worker's router for a segmented bento: one runtime per segment's BentoML model."""
    import bentoml.sklearn

    runtimes = {}
    for view in spec.segment_specs():
        model = models[str(view.segment)]
        runtimes[str(view.segment)] = ServingRuntime.for_model(
            view,
            bentoml.sklearn.load_model(model),
            dict(model.info.labels),
            fallback_version=str(model.tag.version),
            options=options,
            on_batch=on_batch,
        )
    return SegmentRouter(spec, runtimes)


def segmented_records_json_schema(spec: UseCaseSpec, max_records: int) -> dict:
    """JSON schema of a segmented use case's ``records``: each record is one segment's record."""
    from mlops_assets.serving.records import record_model

    return {
        "type": "array",
        "items": {
            "anyOf": [record_model(view).model_json_schema() for view in spec.segment_specs()]
        },
        "minItems": 1,
        "maxItems": max_records,
        "description": f"{spec.name} records to score, 1 to {max_records} per request; each is "
        f"routed to the first segment ({', '.join(spec.segment_names)}) whose fields it carries.",
    }


def segment_model_attributes(tags: Mapping[str, str]) -> Any:
    """Class decorator: one ``model_<segment>`` BentoModel attribute per segment.

    BentoML finds a service's models among its class attributes; a segmented service declares
    as many as its use case has segments, which the class body cannot spell out.
    """

    def declare(cls: type) -> type:
        import bentoml

        for segment, tag in tags.items():
            setattr(cls, f"model_{segment}", bentoml.models.BentoModel(tag))
        return cls

    return declare


def parse_segment_models(spec: UseCaseSpec, value: str | None) -> dict[str, str]:
    """Model tag per segment from the build argument; ``<model>:latest`` for segments not named.

    Serving ``bento/`` directly (not a built bento) takes each segment's latest imported model.
    """
    named = dict(pair.split("=", 1) for pair in (value or "").split(",") if "=" in pair)
    return {
        str(view.segment): named.get(str(view.segment), f"{view.registered_model_name()}:latest")
        for view in spec.segment_specs()
    }


def segmented_columns_json_schema(spec: UseCaseSpec, max_records: int) -> dict:
    """JSON schema of a segmented use case's ``columns``: one segment's columns."""
    from mlops_assets.serving.records import columns_json_schema

    return {
        "anyOf": [columns_json_schema(view, max_records) for view in spec.segment_specs()],
        "description": f"{spec.name} records as columns; the column names choose the segment.",
    }


class SegmentFollowers:
    """One champion follower per segment (``mlops serve``): each segment's alias moves alone."""

    def __init__(self, followers: list[Any]) -> None:
        self.followers = followers

    def stop(self) -> None:
        """Stop every follower (called at shutdown)."""
        for follower in self.followers:
            follower.stop()


def follow_segment_champions(router: SegmentRouter, poll_s: float) -> SegmentFollowers:
    """Started followers keeping each segment's runtime on its registry champion."""
    from mlops_assets.serving.follow import follow_champion

    return SegmentFollowers(
        [follow_champion(runtime.spec, runtime, poll_s) for runtime in router.runtimes.values()]
    )
