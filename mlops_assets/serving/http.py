"""A small ASGI middleware in front of the service: JSON only on the scoring route, ``/docs``.

BentoML picks a body parser from the ``Content-Type`` header; a multipart or form body that does
not parse makes it answer 500. Scoring takes JSON only, so anything else is refused with 415
before BentoML reads it. ``/docs`` redirects to BentoML's OpenAPI page (served at ``/``).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

JSON_TYPES = {"application/json", ""}


class JsonOnlyMiddleware:
    """Refuse non-JSON bodies on ``json_paths`` (415) and redirect ``/docs`` to ``/``.

    Args:
        app: The wrapped ASGI application.
        json_paths: Routes that accept JSON bodies only.
    """

    def __init__(self, app: ASGIApp, json_paths: tuple[str, ...] = ("/predict",)) -> None:
        self.app = app
        self.json_paths = set(json_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer refused bodies and ``/docs`` here; pass everything else through."""
        if scope["type"] == "http":
            path = scope.get("path", "")
            if path in {"/docs", "/docs/"} and scope.get("method") == "GET":
                await _respond(send, 307, b"", [(b"location", b"/")])
                return
            if path in self.json_paths and scope.get("method") == "POST":
                media_type = _media_type(scope)
                if media_type not in JSON_TYPES:
                    body = json.dumps(
                        {"error": f"body must be JSON (application/json), got {media_type!r}"}
                    ).encode()
                    await _respond(send, 415, body, [(b"content-type", b"application/json")])
                    return
        await self.app(scope, receive, send)


def _media_type(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-type":
            return value.decode("latin-1").split(";")[0].strip().lower()
    return ""


async def _respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]):
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
