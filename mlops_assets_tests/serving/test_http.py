"""The ASGI middleware: non-JSON bodies refused with 415 before BentoML parses them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mlops_assets.serving.http import JsonOnlyMiddleware


async def app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def call(method: str, path: str, content_type: str | None) -> tuple[int, dict[bytes, bytes]]:
    headers = [(b"content-type", content_type.encode())] if content_type else []
    scope = {"type": "http", "method": method, "path": path, "headers": headers}
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b""}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(JsonOnlyMiddleware(app)(scope, receive, send))
    return sent[0]["status"], dict(sent[0].get("headers", []))


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("application/json", 200),
        ("application/json; charset=utf-8", 200),
        (None, 200),
        ("multipart/form-data; boundary=x", 415),
        ("application/x-www-form-urlencoded", 415),
        ("text/plain", 415),
        ("application/vnd.bentoml+pickle", 415),
    ],
)
def test_only_json_reaches_predict(content_type: str | None, status: int) -> None:
    assert call("POST", "/predict", content_type)[0] == status


def test_other_routes_pass_and_docs_redirects() -> None:
    assert call("POST", "/other", "text/plain")[0] == 200
    status, headers = call("GET", "/docs", None)
    assert status == 307 and headers[b"location"] == b"/"
