"""The scoring routes' request bodies: read by orjson, BentoML's own parse when that does not fit.

BentoML reads an API's JSON body into its input model with pydantic (``model_validate_json``).
For the scoring routes that model is one field, ``records`` (a list) or ``columns`` (an
object) of ``Any``: the validation checks the container's type and copies it, and the request
checks (:mod:`mlops_assets.serving.records`) judge the values. For a 10,000-record body that
parse took 49 ms; orjson took 25 ms and the checks below 10 ms more, on a request whose
scoring takes about 250 ms.

:func:`json_body` makes the input model BentoML's ``bentoml.api(input_spec=...)`` takes: its
``from_http_request`` parses the body with orjson and, when the result is an object whose field
holds the expected container, builds the model from it without a second pass. Anything else —
JSON orjson refuses (a lone surrogate escape, ``NaN``, a number beyond a double's range) or may
read differently (a float of 2**63 or more: orjson's reading of an integer beyond 64 bits;
values nested deeper than a record's), a body that is not an object, a missing or mistyped
field — goes to BentoML's own parse of the same bytes, so it is accepted or refused (400,
worded by :class:`~mlops_assets.serving.http.RequestGuard`) exactly as before. The model's
JSON schema, hence the OpenAPI page, is the one BentoML derives.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson
from _bentoml_sdk import IODescriptor  # the type bentoml.api's ``input_spec`` documents
from pydantic import create_model

INT64_LIMIT = 2.0**63  # orjson reads a longer integer as a float; BentoML keeps it whole


class FastJSONBody(IODescriptor):
    """An input model of one field, read by orjson when the body fits it (see the module)."""

    container: ClassVar[type] = list  # the JSON container the field holds: list or dict

    @classmethod
    async def from_http_request(cls, request: Any, serde: Any) -> IODescriptor:
        """The body's model, parsed once; BentoML's parse for whatever does not fit."""
        (name,) = cls.model_fields
        body = await request.body()  # starlette keeps it: BentoML's parse reads it again
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            parsed = None
        value = parsed.get(name) if type(parsed) is dict else None
        if type(value) is cls.container and _read_alike(value):
            return cls.model_construct(**{name: value})
        return await super().from_http_request(request, serde)


def _read_alike(container: list | dict) -> bool:
    """Whether BentoML's parse would have read ``container`` the same: plain values, two levels.

    A records list holds objects of plain values, a columns object lists of plain values.
    Deeper JSON is left to BentoML's parse, which refuses nesting past its recursion limit
    (orjson reads deeper), and so is a float of 2**63 or more: orjson makes one of an integer
    too long for 64 bits, which BentoML keeps whole.
    """
    for item in container.values() if type(container) is dict else container:
        kind = type(item)
        if kind is dict or kind is list:
            for value in item.values() if kind is dict else item:
                inner = type(value)
                if inner is dict or inner is list:
                    return False
                if inner is float and not -INT64_LIMIT < value < INT64_LIMIT:
                    return False
        elif kind is float and not -INT64_LIMIT < item < INT64_LIMIT:
            return False
    return True


def json_body(name: str, field: str, annotation: Any, container: type) -> type[IODescriptor]:
    """A one-field input model (``field``: ``annotation``) whose field is a ``container``."""
    model = create_model(name, __base__=FastJSONBody, **{field: (annotation, ...)})
    model.container = container
    return model
