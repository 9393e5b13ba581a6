"""Which model slot answers a record: by the fields it carries, never by their values.

A use case has one or more model slots. An unsegmented use case has one slot: every record goes
to it, and its checks report missing and unknown fields as usual. A segmented use case has one
slot per segment, each trained on a subset of the features, and routes by fields (a service
narrowed to one segment too, so a record it cannot take is refused as not carrying its fields):

- a record goes to the **first segment, in spec order,** whose fields (the use case's id columns
  and the segment's features) are all present in it, null values included ("present" means the
  key is there; send ``null`` for an unknown value as usual);
- the fields of the use case that the chosen segment does not use are ignored, so a record
  carrying every field goes to the first segment;
- a record that carries the fields of no segment is a 422 naming, per segment, the fields it
  lacks; fields unknown to the use case are reported by the chosen segment's checks as usual.

A service can answer for some segments only (``MLOPS_SERVE_SEGMENTS``, set by
``mlops serve --segment``): :func:`served_segments` narrows the spec, so routing, the JSON
schema and the models loaded know only those segments.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mlops_assets.serving.records import (
    RequestProblem,
    columns_json_schema,
    problem,
    record_model,
)
from mlops_assets.serving.scoring import Accepted
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


def slot_fields(view: UseCaseSpec) -> list[str]:
    """The fields a record must carry to be routed to a slot (ids, then its features)."""
    return [c.name for c in view.input_columns]


def choose_slot(fields: Iterable[str], spec: UseCaseSpec) -> UseCaseSpec | None:
    """The slot that answers a record with these fields, or ``None``.

    The one slot of an unsegmented use case; else the first segment (spec order) whose fields
    are all among ``fields``.
    """
    views = spec.segment_specs()
    if not spec.segments:
        return views[0]
    present = set(fields)
    return next((view for view in views if set(slot_fields(view)) <= present), None)


def missing_by_slot(fields: Iterable[str], spec: UseCaseSpec) -> dict[str, list[str]]:
    """For each segment, the fields it needs that ``fields`` lacks (in spec order)."""
    present = set(fields)
    return {
        str(view.segment): [name for name in slot_fields(view) if name not in present]
        for view in spec.segment_specs()
    }


def no_slot_message(fields: Iterable[str], spec: UseCaseSpec) -> str:
    """Why no segment can answer: each segment with the fields missing for it."""
    missing = missing_by_slot(fields, spec)
    needs = "; ".join(f"{name} needs {', '.join(lacks)}" for name, lacks in missing.items())
    return f"carries the fields of no segment ({needs})"


def trim_to_slot(record: Any, view: UseCaseSpec, known: set[str]) -> Any:
    """The record's fields the slot uses, plus fields unknown to the use case (reported).

    Anything but an object is returned as it is, for the slot's checks to report.
    """
    if not isinstance(record, Mapping):
        return record
    wanted = set(slot_fields(view))
    return {k: v for k, v in record.items() if k in wanted or k not in known}


def route_records(
    records: Sequence[Any], spec: UseCaseSpec
) -> tuple[dict[str | None, list[int]], list[RequestProblem]]:
    """Record positions per slot, and a problem for each record that no slot can take."""
    views = spec.segment_specs()
    if not spec.segments:
        return {views[0].segment: list(range(len(records)))}, []
    groups: dict[str | None, list[int]] = {}
    found: list[RequestProblem] = []
    for row, record in enumerate(records):
        if type(record) is not dict:
            found.append(problem(row, None, "expected an object"))
            continue
        view = choose_slot(record, spec)
        if view is None:
            found.append(problem(row, None, no_slot_message(record, spec)))
        else:
            groups.setdefault(view.segment, []).append(row)
    return groups, found


def id_records(outcome: Accepted) -> list[dict[str, Any]]:
    """Each record's ids as an object, from the columns a slot's scorer returns."""
    if not outcome.ids:
        return [{} for _ in outcome.predictions]
    names = list(outcome.ids)
    columns = list(outcome.ids.values())
    if len(names) == 1:  # dict displays: 4x faster than dict(zip(...)) per record
        (first,) = names
        return [{first: a} for a in columns[0]]
    if len(names) == 2:
        first, second = names
        return [{first: a, second: b} for a, b in zip(*columns, strict=True)]
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def renumbered(found: RequestProblem, rows: Sequence[int]) -> RequestProblem:
    """A problem of a slot's share of a request, numbered as in the whole request."""
    if found.row < 0:
        return found
    row = rows[found.row]
    location = found.location.replace(f"records[{found.row}]", f"records[{row}]", 1)
    return RequestProblem(row, found.column, location, found.message)


def records_schema(spec: UseCaseSpec, max_records: int) -> dict[str, Any]:
    """JSON schema of ``records``: each record is one slot's record."""
    schemas = [record_model(view).model_json_schema() for view in spec.segment_specs()]
    routed = (
        f"; each is routed to the first segment ({', '.join(spec.segment_names)}) whose "
        "fields it carries"
        if len(schemas) > 1
        else ""
    )
    return {
        "type": "array",
        "items": schemas[0] if len(schemas) == 1 else {"anyOf": schemas},
        "minItems": 1,
        "maxItems": max_records,
        "description": f"{spec.name} records to score, 1 to {max_records} per request{routed}.",
    }


def columns_schema(spec: UseCaseSpec, max_records: int) -> dict[str, Any]:
    """JSON schema of ``columns``: one slot's columns (the column names choose the slot)."""
    schemas = [columns_json_schema(view, max_records) for view in spec.segment_specs()]
    if len(schemas) == 1:
        return schemas[0]
    return {
        "anyOf": schemas,
        "description": f"{spec.name} records as columns; the column names choose the segment.",
    }
