"""Ceiling (b) of the serving benchmark on BentoML's stack: parse the same body, answer a constant.

Run: ``bentoml serve bare_service:BareService`` from ``bench/``.
"""

from __future__ import annotations

import os
from typing import Any

import bentoml


@bentoml.service(
    name="bare_service",
    workers=int(os.environ.get("MLOPS_SERVING_WORKERS", "1")),
    logging={"access": {"enabled": False}},
)
class BareService:
    """Answers every request with zeros: the HTTP and JSON cost alone."""

    @bentoml.api(route="/predict")
    async def predict(self, records: list[Any]) -> dict[str, Any]:
        return {"predictions": [0.0] * len(records)}
