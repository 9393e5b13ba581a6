"""The ASGI guard in front of the service, in process: refusals, limits, keys, request ids, logs.

Before it, a 400 MB body was read whole (+546 MiB), a never-ending chunked body held its socket
forever, a 65 KB ``X-Request-ID`` was echoed and logged, there were no keys, and a body BentoML
could not validate logged a ~3 KB traceback. The same behaviours are checked against a real
``bentoml serve`` in ``test_service.py``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from typing import Any

import pytest

from mlops_assets.environment import ServingOptions
from mlops_assets.serving.http import GuardSettings, RequestGuard, body_limit
from mlops_assets.specs import UseCaseSpec

KEY = "k" * 20


class App:
    """The service behind the guard: answers what it read, or a canned answer."""

    def __init__(self, status: int = 200, body: bytes | None = None) -> None:
        self.status, self.body = status, body
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        self.calls.append({"scope": scope, "body": message.get("body", b"")})
        body = self.body if self.body is not None else message.get("body", b"")
        await send({"type": "http.response.start", "status": self.status, "headers": []})
        await send({"type": "http.response.body", "body": body})


def call(
    guard: RequestGuard,
    headers: dict[str, str] | None = None,
    chunks: list[bytes] | None = None,
    method: str = "POST",
    path: str = "/predict",
    stall: bool = False,
) -> tuple[int, dict[bytes, bytes], bytes]:
    sent: list[dict] = []
    parts = list(chunks if chunks is not None else [b"{}"])
    header_list = {"content-type": "application/json", **(headers or {})}
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(k.lower().encode(), v.encode()) for k, v in header_list.items()],
    }

    async def receive() -> dict:
        if parts:
            part = parts.pop(0)
            return {"type": "http.request", "body": part, "more_body": bool(parts) or stall}
        if stall:
            await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(guard(scope, receive, send))
    if not sent:
        return 0, {}, b""
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return sent[0]["status"], dict(sent[0].get("headers", [])), body


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("application/json", 200),
        ("application/json; charset=utf-8", 200),
        ("", 200),
        ("multipart/form-data; boundary=x", 415),
        ("application/x-www-form-urlencoded", 415),
        ("text/plain", 415),
        ("application/vnd.bentoml+pickle", 415),
    ],
)
def test_only_json_reaches_predict(content_type: str, status: int) -> None:
    assert call(RequestGuard(App()), {"content-type": content_type})[0] == status


def test_other_routes_pass_and_docs_redirects() -> None:
    assert call(RequestGuard(App()), {"content-type": "text/plain"}, path="/other")[0] == 200
    status, headers, _ = call(RequestGuard(App()), method="GET", path="/docs")
    assert status == 307 and headers[b"location"] == b"/"


def test_a_declared_body_over_the_limit_is_refused_unread() -> None:
    app = App()
    guard = RequestGuard(app, GuardSettings(max_body_bytes=1000))
    status, headers, body = call(guard, {"content-length": "400000000"})
    assert status == 413 and headers[b"connection"] == b"close"
    assert "1,000 bytes" in json.loads(body)["error"] and app.calls == []


def test_a_chunked_body_is_cut_when_it_passes_the_limit() -> None:
    app = App()
    guard = RequestGuard(app, GuardSettings(max_body_bytes=1000))
    status, _, _ = call(guard, chunks=[b"x" * 600] * 100_000)  # would be 60 MB
    assert status == 413 and app.calls == []
    assert call(guard, chunks=[b"x" * 500, b"x" * 500])[0] == 200  # exactly the limit


def test_a_body_that_never_ends_times_out() -> None:
    guard = RequestGuard(App(), GuardSettings(body_timeout_s=0.2))
    status, headers, body = call(guard, chunks=[b'{"records"'], stall=True)
    assert status == 408 and headers[b"connection"] == b"close"
    assert "0.2 s" in json.loads(body)["error"]


def test_a_client_leaving_mid_body_is_one_line(caplog: pytest.LogCaptureFixture) -> None:
    """It used to reach BentoML, which logged a traceback (``ClientDisconnect``)."""
    app = App()
    guard = RequestGuard(app)
    sent: list[dict] = []

    async def receive() -> dict:
        if not sent:
            sent.append({})
            return {"type": "http.request", "body": b'{"rec', "more_body": True}
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        raise AssertionError("nothing is sent to a client that left")

    scope = {"type": "http", "method": "POST", "path": "/predict", "headers": []}
    with caplog.at_level(logging.INFO, logger="mlops_assets.serving.http"):
        asyncio.run(guard(scope, receive, send))
    lines = [r for r in caplog.records if "disconnected mid-body" in r.getMessage()]
    assert len(lines) == 1 and lines[0].exc_info is None and app.calls == []


@pytest.mark.parametrize(
    ("value", "status"),
    [
        ("abc-123_x.y:z", 200),
        ("a" * 128, 200),
        ("a" * 129, 400),
        ("x" * 65_000, 400),
        ("with space", 400),
        ("", 400),
        ("é", 400),
    ],
)
def test_request_ids_are_checked(value: str, status: int) -> None:
    app = App()
    found, headers, body = call(RequestGuard(app), {"x-request-id": value})
    assert found == status
    if status == 200:
        assert headers[b"x-request-id"] == value.encode()
    else:
        assert "X-Request-ID" in json.loads(body)["error"] and len(body) < 300
        assert headers[b"x-request-id"] != value.encode()  # never echoed


def test_a_request_without_an_id_gets_one_the_service_sees() -> None:
    app = App()
    _, headers, _ = call(RequestGuard(app))
    made = headers[b"x-request-id"]
    assert len(made) == 32 and (b"x-request-id", made) in app.calls[0]["scope"]["headers"]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"authorization": f"Bearer {KEY}"}, 200),
        ({"authorization": f"bearer {KEY}"}, 200),
        ({"x-api-key": KEY}, 200),
        ({"x-api-key": "other-key-0123456789"}, 200),
        ({"x-api-key": KEY + "x"}, 401),
        ({"authorization": f"Basic {KEY}"}, 401),
        ({"x-api-key": ""}, 401),
    ],
)
def test_api_keys(headers: dict[str, str], status: int) -> None:
    guard = RequestGuard(App(), GuardSettings(api_keys=(KEY, "other-key-0123456789")))
    found, answer, _ = call(guard, headers)
    assert found == status
    if status == 401:
        assert answer[b"www-authenticate"].startswith(b"Bearer")


def test_keys_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every key is compared, by ``hmac.compare_digest`` on equal-length digests."""
    compared: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        compared.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    guard = RequestGuard(App(), GuardSettings(api_keys=(KEY, "b" * 30, "c" * 40)))
    assert call(guard, {"x-api-key": KEY})[0] == 200
    assert call(guard, {"x-api-key": "nope"})[0] == 401
    assert compared == [(32, 32)] * 6


def test_health_and_docs_need_no_key() -> None:
    guard = RequestGuard(App(), GuardSettings(api_keys=(KEY,)))
    for path in ("/healthz", "/readyz", "/livez", "/metrics", "/docs.json"):
        assert call(guard, method="GET", path=path)[0] == 200, path


def test_bentoml_s_400_is_reworded_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    bentoml_answer = {
        "error": "1 validation error for Input",
        "detail": [{"type": "missing", "loc": ["records"], "msg": "Field required"}],
    }
    guard = RequestGuard(App(400, json.dumps(bentoml_answer).encode()))
    with caplog.at_level(logging.INFO, logger="mlops_assets.serving.http"):
        status, headers, body = call(guard, {"x-request-id": "r-1"})
    answer = json.loads(body)
    assert status == 400 and answer["detail"] == "records: Field required"
    assert answer["error"] == "bad request body: records: Field required"
    assert answer["request_id"] == "r-1" and int(headers[b"content-length"]) == len(body)
    [line] = [r.getMessage() for r in caplog.records]
    assert (
        line
        == "rejected: POST /predict 400 (request r-1): bad request body: records: Field required"
    )


def test_a_422_is_logged_in_one_line(caplog: pytest.LogCaptureFixture) -> None:
    answer = {"error": "records[0].Item_MRP: expected a number", "problems": []}
    guard = RequestGuard(App(422, json.dumps(answer).encode()))
    with caplog.at_level(logging.INFO, logger="mlops_assets.serving.http"):
        status, _, body = call(guard, {"x-request-id": "r-2"})
    assert status == 422 and json.loads(body) == answer
    assert [r.getMessage() for r in caplog.records] == [
        "rejected: POST /predict 422 (request r-2): records[0].Item_MRP: expected a number"
    ]


def test_bentoml_s_tracebacks_of_client_errors_are_dropped() -> None:
    from pydantic import BaseModel, ValidationError

    from mlops_assets.serving.http import BENTOML_REQUEST_LOGGER

    RequestGuard(App())
    logger = logging.getLogger(BENTOML_REQUEST_LOGGER)

    class Input(BaseModel):
        records: list

    def logged(error: BaseException) -> bool:
        record = logger.makeRecord(
            logger.name, logging.ERROR, __file__, 1, "Exception on /predict", (), None
        )
        record.exc_info = (type(error), error, None)
        return all(f.filter(record) for f in logger.filters)

    try:
        Input.model_validate_json(b"{bad")
    except ValidationError as error:
        assert not logged(error)
    assert logged(RuntimeError("a real server error keeps its traceback"))


def test_the_document_and_page_are_rewritten() -> None:
    page = b"<html><head><title>BentoML Prediction Service</title></head></html>"
    guard = RequestGuard(
        App(200, page), GuardSettings(title="bigmart_sales: <predictions>", describe=None)
    )
    _, headers, body = call(guard, method="GET", path="/")
    assert b"<title>bigmart_sales: &lt;predictions></title>" in body
    assert int(headers[b"content-length"]) == len(body)
    guard = RequestGuard(App(200, b'{"info": {}}'), GuardSettings(describe=lambda d: {**d, "x": 1}))
    assert json.loads(call(guard, method="GET", path="/docs.json")[2]) == {"info": {}, "x": 1}


def test_the_default_body_limit_has_room_for_the_records(spec: UseCaseSpec) -> None:
    from mlops_assets_tests.harness.records import record

    options = ServingOptions(max_records=10_000)
    limit = body_limit(spec, options)
    records = json.dumps({"records": [record(Item_Type="Fruits and Vegetables")] * 10_000})
    assert len(records) + 3 * 1024 * 1024 < limit < 16 * 1024 * 1024
    assert body_limit(spec, ServingOptions(max_body_bytes=1234)) == 1234


def test_serving_limits_and_keys_from_the_environment() -> None:
    from mlops_assets.environment import SettingError

    options = ServingOptions.from_env(
        {
            "MLOPS_SERVING_MAX_BODY_BYTES": "5000000",
            "MLOPS_SERVING_BODY_TIMEOUT_S": "12",
            "MLOPS_SERVING_API_KEYS": f" {KEY} , {'z' * 16}",
        }
    )
    assert (options.max_body_bytes, options.body_timeout_s) == (5_000_000, 12.0)
    assert options.api_keys == (KEY, "z" * 16) and KEY not in repr(options)
    with pytest.raises(SettingError, match="at least 16"):
        ServingOptions.from_env({"MLOPS_SERVING_API_KEYS": "short"})
    with pytest.raises(SettingError):
        ServingOptions.from_env({"MLOPS_SERVING_BODY_TIMEOUT_S": "0"})
