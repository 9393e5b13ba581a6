"""The scoring routes' request bodies: read by orjson, BentoML's own parse when that does not fit.

BentoML reads an API's JSON body into its input model with pydantic (``model_validate_json``).
For the scoring routes that model is one field, ``records`` (a list) or ``columns`` (an
object) of ``Any``: the validation checks the container's type and copies it, and the request
checks (:mod:`mlops_assets.serving.records`) judge the values. For a 10,000-record body that
parse took 49 ms and orjson 25 ms, on a request whose scoring takes about 200 ms.

:func:`json_body` makes the input model BentoML's ``bentoml.api(input_spec=...)`` takes: its
``from_http_request`` parses the body with orjson and, when the result is an object whose field
holds the expected container, builds the model from it without a second pass. Anything else
goes to BentoML's own parse of the same bytes, so it is accepted or refused (400, worded by
:class:`~mlops_assets.serving.http.RequestGuard`) as before: JSON orjson refuses (a lone
surrogate escape, ``NaN``, a number beyond a double's range), a body with 19 digits in a row
(orjson reads an integer beyond 64 bits as a float, BentoML keeps it whole), a body that is not
an object, a missing or mistyped field. One difference is kept: values nested deeper than
BentoML's recursion limit (about 200 levels) are read, and the request checks answer 422 naming
the field (a record's values are plain), where BentoML answered 400.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson
from _bentoml_sdk import IODescriptor  # the type bentoml.api's ``input_spec`` documents
from pydantic import create_model

DIGITS_ONLY = bytes(ord("0") if ord("0") <= i <= ord("9") else ord(" ") for i in range(256))
LONG_NUMBER = b"0" * 19  # 19 digits in a row: an integer that may not fit 64 bits


class FastJSONBody(IODescriptor):
    """An input model of one field, read by orjson when the body fits it (see the module)."""

    container: ClassVar[type] = list  # the JSON container the field holds: list or dict

    @classmethod
    async def from_http_request(cls, request: Any, serde: Any) -> IODescriptor:
        """The body's model, parsed once; BentoML's parse for whatever does not fit."""
        (name,) = cls.model_fields
        body = await request.body()  # starlette keeps it: BentoML's parse reads it again
        parsed = None
        if body.translate(DIGITS_ONLY).find(LONG_NUMBER) < 0:  # 5 ms for 3 MB, in C
            try:
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError:
                pass
        value = parsed.get(name) if type(parsed) is dict else None
        if type(value) is cls.container:
            return cls.model_construct(**{name: value})
        return await super().from_http_request(request, serde)


def json_body(name: str, field: str, annotation: Any, container: type) -> type[IODescriptor]:
    """A one-field input model (``field``: ``annotation``) whose field is a ``container``."""
    model = create_model(name, __base__=FastJSONBody, **{field: (annotation, ...)})
    model.container = container
    return model
