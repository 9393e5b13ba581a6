"""The ASGI middleware in front of the service: limits, keys, request ids, readable refusals.

:class:`RequestGuard` sits between uvicorn and BentoML. On the scoring routes (``POST /predict``,
``/predict_columns``), in this order, before BentoML reads a byte of the body:

* **API keys** (``MLOPS_SERVING_API_KEYS``): without a valid ``Authorization: Bearer <key>`` or
  ``X-API-Key: <key>`` the answer is 401. Keys are compared in constant time
  (``hmac.compare_digest`` of their SHA-256 digests, every key every time). Other routes
  (health, ``/metrics``, the OpenAPI page) stay open.
* **Request id**: an ``X-Request-ID`` must be 1 to 128 letters, digits or ``._:-`` (else 400);
  without one, one is made here, so every answer and log line of a request carries the same id.
* **JSON only** (else 415): BentoML picks a body parser from the ``Content-Type`` header, and a
  multipart or form body that does not parse made it answer 500.
* **Body size** (``MLOPS_SERVING_MAX_BODY_BYTES``, default :func:`body_limit`): a declared
  ``Content-Length`` above it is refused at once, a chunked body as soon as it grows past it
  (413); **body read timeout** (``MLOPS_SERVING_BODY_TIMEOUT_S``): a client that has not sent
  the whole body in time gets 408. Both answers close the connection. A client that hangs up
  while sending is one log line, not a traceback.

Each refused request is one log line (``rejected POST /predict 422 (request …): …``), whoever
refused it: this middleware, the request checks (422), or BentoML's own body validation (400,
whose answer is reworded here to the shape the OpenAPI document gives: ``error`` and ``detail``
as text). BentoML logs a ~3 KB traceback for each of those 400s; :func:`configure_logging`
drops those, so tracebacks are left for real server errors.

``GET /docs`` redirects to BentoML's OpenAPI page (served at ``/``), whose title this sets;
``GET /docs.json`` is passed through ``describe`` (:func:`mlops_assets.serving.openapi.describe`),
which documents what this middleware and the request checks answer.

Slow *headers* are not handled here: uvicorn calls the application only once the headers are
complete and has no timeout for them. The Compose stack puts a reverse proxy in front of the
service for that (``docker/nginx.conf``); see the README's *Reliability* section.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlops_assets.environment import ServingOptions
from mlops_assets.serving.runtime import REQUEST_ID_HEADER
from mlops_assets.specs.model import UseCaseSpec

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

logger = logging.getLogger(__name__)

JSON_TYPES = {"application/json", ""}
SCORING_ROUTES = ("/predict", "/predict_columns")
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
REQUEST_ID_RULE = "1 to 128 letters, digits or . _ : -"
BODY_HEADROOM_BYTES = 4 * 1024 * 1024
FIELD_BYTES = 40  # quotes, colon, comma and a value of about 30 characters
LOGGED_REASON_CHARS = 300
CLOSE = (b"connection", b"close")


def body_limit(spec: UseCaseSpec, options: ServingOptions) -> int:
    """The largest body read: ``MLOPS_SERVING_MAX_BODY_BYTES``, else a default from the spec.

    The default is room for ``max_records`` JSON records of the use case (each field's name and
    a value of about 30 characters) and 4 MiB more (BigMart, 10,000 records: about 10 MB).
    """
    if options.max_body_bytes:
        return options.max_body_bytes
    per_record = sum(len(column.name) + FIELD_BYTES for column in spec.input_columns)
    return options.max_records * per_record + BODY_HEADROOM_BYTES


@dataclass(frozen=True)
class GuardSettings:
    """What :class:`RequestGuard` enforces.

    Attributes:
        scoring_paths: Routes whose ``POST`` bodies are guarded (and keyed).
        max_body_bytes: Largest body read (413 beyond).
        body_timeout_s: Seconds to receive a whole body (408 after).
        api_keys: Keys accepted on the scoring routes; empty: open.
        title: The OpenAPI page's title (``None``: BentoML's).
        describe: Rewrites the OpenAPI document served at ``/docs.json``.
    """

    scoring_paths: tuple[str, ...] = SCORING_ROUTES
    max_body_bytes: int = 16 * 1024 * 1024
    body_timeout_s: float = 30.0
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    title: str | None = None
    describe: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    @classmethod
    def for_service(
        cls,
        spec: UseCaseSpec,
        options: ServingOptions,
        title: str | None = None,
        describe: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> GuardSettings:
        """The settings of a use case's service from its serving options."""
        return cls(
            max_body_bytes=body_limit(spec, options),
            body_timeout_s=options.body_timeout_s,
            api_keys=options.api_keys,
            title=title,
            describe=describe,
        )


class Refused(Exception):
    """A request answered here with a 4xx, before the service sees it."""

    def __init__(self, status: int, message: str, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.close = close


class ClientGone(Exception):
    """The client disconnected before its body was complete."""


class RequestGuard:
    """Limits, API keys, request ids and readable refusals in front of the service.

    Args:
        app: The wrapped ASGI application.
        settings: What to enforce.
    """

    def __init__(self, app: ASGIApp, settings: GuardSettings | None = None) -> None:
        self.app = app
        self.settings = settings or GuardSettings()
        self.scoring_paths = set(self.settings.scoring_paths)
        self._key_digests = [_digest(key.encode()) for key in self.settings.api_keys]
        configure_logging()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Guard the scoring routes, redirect ``/docs``, describe the service; pass the rest."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope.get("path", ""), scope.get("method")
        if method == "GET" and path in {"/docs", "/docs/"}:
            await _respond(send, 307, b"", [(b"location", b"/")])
        elif method == "POST" and path in self.scoring_paths:
            await self._scoring(scope, receive, send)
        elif method == "GET" and path == "/docs.json" and self.settings.describe is not None:
            await self.app(scope, receive, _rewriting(send, self._document))
        elif method == "GET" and path == "/" and self.settings.title:
            await self.app(scope, receive, _rewriting(send, self._page))
        else:
            await self.app(scope, receive, send)

    async def _scoring(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = _headers(scope)
        given = headers.get(REQUEST_ID_HEADER)
        request_id = given if given is not None and REQUEST_ID.fullmatch(given) else None
        request_id = request_id or uuid.uuid4().hex
        where = f"{scope.get('method')} {scope.get('path')}"
        try:
            self._check_headers(headers, given)
            body = await self._read_body(receive, headers)
        except Refused as refused:
            _log_rejected(where, refused.status, request_id, refused.message)
            answer = json.dumps({"error": refused.message, "request_id": request_id}).encode()
            extra = [CLOSE] if refused.close else []
            if refused.status == 401:
                extra.append((b"www-authenticate", b'Bearer realm="predict"'))
            await _respond(send, refused.status, answer, _json_headers(request_id, extra))
            return
        except ClientGone:
            logger.info("client gone: %s (request %s) disconnected mid-body", where, request_id)
            return
        if given is None:  # the service answers with the id made here
            scope["headers"] = [
                *scope.get("headers", []),
                (REQUEST_ID_HEADER.encode(), request_id.encode()),
            ]
        await self.app(scope, _replay(body, receive), _reporting(send, where, request_id))

    def _check_headers(self, headers: dict[str, str], request_id: str | None) -> None:
        if self._key_digests and not self._authorized(headers):
            raise Refused(
                401,
                "an API key is needed: send Authorization: Bearer <key> or X-API-Key: <key>",
                close=True,
            )
        if request_id is not None and not REQUEST_ID.fullmatch(request_id):
            raise Refused(
                400,
                f"X-Request-ID must be {REQUEST_ID_RULE} (got {len(request_id)} characters)",
                close=True,
            )
        media_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type not in JSON_TYPES:
            shown = media_type if len(media_type) <= 60 else media_type[:60] + "…"
            raise Refused(415, f"body must be JSON (application/json), got {shown!r}", close=True)
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                raise Refused(400, "Content-Length must be a whole number of bytes", close=True)
            if int(length) > self.settings.max_body_bytes:
                raise Refused(413, self._too_large(), close=True)

    def _authorized(self, headers: dict[str, str]) -> bool:
        presented = headers.get("x-api-key")
        if presented is None:
            scheme, _, token = headers.get("authorization", "").partition(" ")
            presented = token.strip() if scheme.lower() == "bearer" else None
        if not presented:
            return False
        digest = _digest(presented.encode("utf-8", "surrogateescape"))
        matched = False
        for key in self._key_digests:  # every key, every time: no early exit to time
            matched |= hmac.compare_digest(digest, key)
        return matched

    def _too_large(self) -> str:
        limit = self.settings.max_body_bytes
        return (
            f"body larger than {limit:,} bytes (MLOPS_SERVING_MAX_BODY_BYTES); send fewer "
            "records per request"
        )

    async def _read_body(self, receive: Receive, headers: dict[str, str]) -> bytes:
        """The whole body within the size and time limits."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.body_timeout_s
        chunks: list[bytes] = []
        size = 0
        while True:
            remaining = deadline - loop.time()
            try:
                if remaining <= 0:
                    raise TimeoutError
                message = await asyncio.wait_for(receive(), remaining)
            except TimeoutError:
                raise Refused(
                    408,
                    f"the body did not arrive within {self.settings.body_timeout_s:g} s "
                    f"({size:,} bytes received)",
                    close=True,
                ) from None
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.settings.max_body_bytes:
                raise Refused(413, self._too_large(), close=True)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _document(self, status: int, body: bytes) -> bytes:
        if status != 200 or self.settings.describe is None:
            return body
        return json.dumps(self.settings.describe(json.loads(body))).encode()

    def _page(self, status: int, body: bytes) -> bytes:
        if status != 200 or not self.settings.title:
            return body
        title = self.settings.title.replace("&", "&amp;").replace("<", "&lt;")
        return re.sub(rb"<title>.*?</title>", f"<title>{title}</title>".encode(), body, count=1)


def _without(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> list[tuple[bytes, bytes]]:
    return [(key, value) for key, value in headers if key.lower() != name]


def _digest(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()


def _headers(scope: Scope) -> dict[str, str]:
    """Request headers by lower-case name (the first of repeated ones)."""
    found: dict[str, str] = {}
    for name, value in scope.get("headers", []):
        found.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return found


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the body already read, then the client's own messages."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _json_headers(request_id: str, extra: Sequence[tuple[bytes, bytes]] = ()) -> list:
    return [
        (b"content-type", b"application/json"),
        (REQUEST_ID_HEADER.encode(), request_id.encode()),
        *extra,
    ]


def _reporting(send: Send, where: str, request_id: str) -> Send:
    """A ``send`` that logs a refused answer in one line and rewords BentoML's 400s.

    Every answer carries ``X-Request-ID``. A 4xx answer (small: problems are capped and their
    values cut) is held until complete, so it can be read and logged.
    """
    held: dict[str, Any] = {}

    async def report(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = _without(message.get("headers", []), b"x-request-id")
            message = {**message, "headers": [*headers, (b"x-request-id", request_id.encode())]}
            if 400 <= message["status"] < 500:
                held["start"], held["body"] = message, []
                return
            if message["status"] >= 500:
                logger.error("failed: %s %d (request %s)", where, message["status"], request_id)
        elif message["type"] == "http.response.body" and "start" in held:
            held["body"].append(message.get("body", b""))
            if message.get("more_body", False):
                return
            start = held.pop("start")
            status = start["status"]
            body, reason = _refusal(status, b"".join(held.pop("body")), request_id)
            _log_rejected(where, status, request_id, reason)
            headers = _without(start["headers"], b"content-length")
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await send(message)

    return report


def _refusal(status: int, body: bytes, request_id: str) -> tuple[bytes, str]:
    """A 4xx body as the document describes it, and the reason to log.

    BentoML's own 400 (its validation of the body against the route's input model) has
    ``detail`` as a list of pydantic errors; it becomes text, naming where each one is.
    """
    try:
        answer = json.loads(body)
    except ValueError:
        return body, body[:LOGGED_REASON_CHARS].decode("utf-8", "replace")
    if not isinstance(answer, dict):
        return body, str(answer)[:LOGGED_REASON_CHARS]
    detail = answer.get("detail")
    if status == 400 and isinstance(detail, list):
        problems = [_pydantic_problem(item) for item in detail[:5] if isinstance(item, dict)]
        more = f" (and {len(detail) - 1} more)" if len(detail) > 1 else ""
        first = problems[0] if problems else "body does not match the route's schema"
        answer = {
            "error": f"bad request body: {first}{more}",
            "detail": "; ".join(problems),
            "request_id": request_id,
        }
        body = json.dumps(answer).encode()
    return body, str(answer.get("error", ""))[:LOGGED_REASON_CHARS]


def _pydantic_problem(item: dict[str, Any]) -> str:
    where = ".".join(str(part) for part in item.get("loc", ()))
    message = str(item.get("msg", "invalid"))[:200]
    return f"{where}: {message}" if where else message


def _log_rejected(where: str, status: int, request_id: str, reason: str) -> None:
    reason = " ".join(reason.split())[:LOGGED_REASON_CHARS]
    logger.info("rejected: %s %d (request %s): %s", where, status, request_id, reason)


def _rewriting(send: Send, rewrite: Callable[[int, bytes], bytes]) -> Send:
    """A ``send`` that passes a whole (small) answer through ``rewrite(status, body)``."""
    held: dict[str, Any] = {}

    async def rewritten(message: Message) -> None:
        if message["type"] == "http.response.start":
            held["start"], held["body"] = message, []
            return
        if message["type"] == "http.response.body" and "start" in held:
            held["body"].append(message.get("body", b""))
            if message.get("more_body", False):
                return
            start = held.pop("start")
            body = rewrite(start["status"], b"".join(held.pop("body")))
            headers = _without(start["headers"], b"content-length")
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await send(message)

    return rewritten


async def _respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]):
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _QuietClientErrors(logging.Filter):
    """Drops BentoML's traceback for a body that failed its validation or a client that left.

    :class:`RequestGuard` logs those requests in one line; other exceptions keep theirs.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if error is None:
            return True
        kind = type(error)
        return not (
            (kind.__name__ == "ValidationError" and kind.__module__.startswith("pydantic"))
            or (kind.__name__ == "ClientDisconnect" and kind.__module__.startswith("starlette"))
        )


_FILTER = _QuietClientErrors()
BENTOML_REQUEST_LOGGER = "bentoml._internal.server.http_app"


def configure_logging() -> None:
    """One line per refused request (our INFO lines shown), no traceback for a client's error."""
    logging.getLogger("mlops_assets").setLevel(logging.INFO)
    bentoml_logger = logging.getLogger(BENTOML_REQUEST_LOGGER)
    if _FILTER not in bentoml_logger.filters:
        bentoml_logger.addFilter(_FILTER)
