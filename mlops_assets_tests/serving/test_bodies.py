"""The scoring routes' bodies: orjson's parse when the body fits, BentoML's own otherwise."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.requests import Request

from mlops_assets.serving.bodies import json_body

RecordsBody = json_body("RecordsBody", "records", list[Any], list)
ColumnsBody = json_body("ColumnsBody", "columns", dict[str, Any], dict)


def parsed(model: type, body: bytes) -> Any:
    """The model BentoML's endpoint would get for ``body`` (or the error it would raise)."""
    from _bentoml_impl.serde import JSONSerde

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {"type": "http", "method": "POST", "path": "/predict", "headers": []}
    return asyncio.run(model.from_http_request(Request(scope, receive), JSONSerde()))


def test_a_body_that_fits_is_read_once_as_it_is() -> None:
    body = b'{"records": [{"a": 1, "b": "x"}, {"a": 2.5, "b": null}]}'
    assert parsed(RecordsBody, body).records == [{"a": 1, "b": "x"}, {"a": 2.5, "b": None}]
    assert parsed(ColumnsBody, b'{"columns": {"a": [1, 2]}}').columns == {"a": [1, 2]}


@pytest.mark.parametrize(
    "body",
    [
        b'{"records": "not a list"}',
        b'{"rows": []}',
        b"[1, 2]",
        b"{not json",
    ],
)
def test_what_does_not_fit_gets_bentoml_s_own_refusal(body: bytes) -> None:
    """Not the fast path's to judge: BentoML's validation answers (a 400 once served)."""
    from pydantic import ValidationError

    with pytest.raises((ValidationError, ValueError)):
        parsed(RecordsBody, body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"records": [{"a": 123456789012345678901234567890}]}',  # orjson: beyond 64 bits
        b'{"records": [{"a": 1e400, "b": -0.0, "c": 1E5}]}',
        b'{"records": [{"a": "\\u00e9\\ud83d\\ude00", "a": "twice"}], "extra": 1}',
        b'{"records": [{"a": "\\ud800"}]}',  # a lone surrogate: refused by both
        b'{"records": [NaN]}',
        b'{"records": []}',
        b'{"records": [{"id": "12345678901234567890123"}, 12345678901234567]}',
        b'{"records": [{"a": 9223372036854775807, "b": -9223372036854775808}]}',
    ],
)
def test_the_fast_parse_agrees_with_bentoml_s_own(body: bytes) -> None:
    """Whatever orjson reads or refuses, the endpoint gets what BentoML's parse gives."""
    from pydantic import ValidationError

    try:
        expected = RecordsBody.model_validate_json(body).records
    except ValidationError:
        with pytest.raises(ValidationError):
            parsed(RecordsBody, body)
        return
    got = parsed(RecordsBody, body).records
    assert repr(got) == repr(expected)  # types too (1 vs 1.0), and NaN equal to itself


def test_values_nested_past_bentoml_s_limit_are_read_for_the_request_checks() -> None:
    """The one difference: BentoML refused such a body with a 400; it now reaches the checks,
    which answer 422 naming the field (a record's values are plain)."""
    from pydantic import ValidationError

    body = b'{"records": [{"a": ' + b"[" * 300 + b"]" * 300 + b"}]}"
    with pytest.raises(ValidationError, match="recursion limit"):
        RecordsBody.model_validate_json(body)
    (record,) = parsed(RecordsBody, body).records
    assert isinstance(record["a"], list)
