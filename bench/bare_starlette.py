"""Ceiling of the bare HTTP stack without BentoML: uvicorn + Starlette parsing the same body.

Run: ``uvicorn bench.bare_starlette:app``.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def predict(request: Request) -> JSONResponse:
    body = await request.json()
    return JSONResponse({"predictions": [0.0] * len(body["records"])})


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/healthz", healthz)])
