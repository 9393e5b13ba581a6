"""The service's OpenAPI document as the service answers: every status, header and key.

BentoML generates ``/docs.json`` from the routes' input and output models; it knows nothing of
what :class:`~mlops_assets.serving.http.RequestGuard` and the request checks answer, so its
document listed only 200, a 400 whose ``detail`` is text, 404 and 500, and a client (or
schemathesis) found 415 and 422 undocumented. :func:`describe` adds, on each scoring route:
the ``X-Request-ID`` header (its pattern, in and out), 400, 401 (with keys), 408, 413, 415 and
422 with their bodies, the API-key schemes, and a title and description that say which use
case, model and limits are behind the page. It is a pure function of the document BentoML
made, applied by the middleware to every ``GET /docs.json``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

from mlops_assets.environment import ServingOptions
from mlops_assets.serving.http import REQUEST_ID, REQUEST_ID_RULE, SCORING_ROUTES, body_limit
from mlops_assets.specs.model import UseCaseSpec

JSON = "application/json"
REQUEST_ID_SCHEMA = {
    "type": "string",
    "pattern": f"^{REQUEST_ID.pattern}$",
    "maxLength": 128,
    "description": f"{REQUEST_ID_RULE}; one is made when none is sent.",
}
PROBLEM = {
    "type": "object",
    "title": "Problem",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "What is wrong, in one line."},
        "detail": {"type": "string", "description": "Each problem found, when several."},
        "request_id": {"type": "string"},
    },
}
RECORD_PROBLEMS = {
    "type": "object",
    "title": "RecordProblems",
    "required": ["error", "problems", "problem_count", "detail", "request_id"],
    "properties": {
        "error": {"type": "string", "description": "The first problem (and how many more)."},
        "problems": {
            "type": "array",
            "items": {"type": "string"},
            "description": "Each problem as `<location>: <message>`, at most 20.",
        },
        "problem_count": {"type": "integer", "minimum": 1},
        "detail": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["record", "field", "message"],
                "properties": {
                    "record": {"type": ["integer", "null"], "minimum": 0},
                    "field": {"type": ["string", "null"]},
                    "message": {"type": "string"},
                },
            },
        },
        "request_id": {"type": "string"},
    },
}
REFUSALS = {
    "400": "The body is not JSON, not an object with the route's field, or the X-Request-ID "
    "header is malformed.",
    "401": "No API key, or an unknown one (`Authorization: Bearer <key>` or `X-API-Key`).",
    "408": "The body did not arrive in time (`MLOPS_SERVING_BODY_TIMEOUT_S`).",
    "413": "The body is larger than `MLOPS_SERVING_MAX_BODY_BYTES`.",
    "415": "The body is not `application/json`.",
}


def describe(
    document: dict[str, Any],
    *,
    title: str,
    description: str,
    api_keys: bool,
    routes: Sequence[str] = SCORING_ROUTES,
) -> dict[str, Any]:
    """A copy of BentoML's document, completed with what the service really answers."""
    described = copy.deepcopy(document)
    info = described.setdefault("info", {})
    info["title"] = title
    info["description"] = description
    info.pop("contact", None)  # BentoML's own team, not whom to ask about this service
    components = described.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Problem"] = PROBLEM
    schemas["RecordProblems"] = RECORD_PROBLEMS
    if api_keys:
        components["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer", "description": "An API key."},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        }
    request_id = {"description": "The request's id.", "schema": {"type": "string"}}
    for route in routes:
        operation = described.get("paths", {}).get(route, {}).get("post")
        if operation is None:
            continue
        operation["parameters"] = [
            *[p for p in operation.get("parameters", []) if p.get("name") != "X-Request-ID"],
            {"name": "X-Request-ID", "in": "header", "schema": REQUEST_ID_SCHEMA},
        ]
        responses = operation.setdefault("responses", {})
        responses.pop("404", None)  # BentoML's default: a route that exists never answers it
        for status, text in REFUSALS.items():
            if status == "401" and not api_keys:
                continue
            responses[status] = _answer(text, "Problem", request_id)
        responses["422"] = _answer(
            "A record (or column) breaks the spec; every problem is named, values cut at 80 "
            "characters.",
            "RecordProblems",
            request_id,
        )
        if "200" in responses:
            responses["200"].setdefault("headers", {})["X-Request-ID"] = request_id
        if api_keys:
            operation["security"] = [{"bearer": []}, {"apiKey": []}]
    return described


def _answer(text: str, schema: str, request_id: dict[str, Any]) -> dict[str, Any]:
    return {
        "description": text,
        "headers": {"X-Request-ID": request_id},
        "content": {JSON: {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def page_text(spec: UseCaseSpec, options: ServingOptions, max_body_bytes: int) -> tuple[str, str]:
    """The page's title and description: use case, task, limits, keys."""
    task = spec.task if not spec.segments else f"{spec.task}, one model per segment"
    title = f"{spec.name}: predictions of the champion model"
    keys = (
        "An API key is needed (`Authorization: Bearer <key>` or `X-API-Key`)."
        if options.api_keys
        else "No API key is needed."
    )
    description = (
        f"Scores raw `{spec.name}` records ({task}, target `{spec.target.name}`) with the "
        f"registered champion: the same cleaning and checks as training. `POST /predict` takes "
        f"up to {options.max_records:,} records, `POST /predict_columns` the same data as "
        f"columns. A body may have {max_body_bytes:,} bytes and must arrive within "
        f"{options.body_timeout_s:g} s. {keys} Every answer carries `X-Request-ID`."
    )
    return title, description


def service_document(
    spec: UseCaseSpec, options: ServingOptions
) -> tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]:
    """The page's title and the rewrite of ``/docs.json`` for a use case's service."""
    title, description = page_text(spec, options, body_limit(spec, options))

    def rewrite(document: dict[str, Any]) -> dict[str, Any]:
        return describe(
            document, title=title, description=description, api_keys=bool(options.api_keys)
        )

    return title, rewrite
