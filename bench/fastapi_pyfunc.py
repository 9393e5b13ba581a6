"""Baseline (a) of the serving benchmark: the pattern the platform replaces.

A plain FastAPI app that loads ``models:/<name>@champion`` with ``mlflow.pyfunc`` and predicts
every request on its own (no batching, no cleaning, no validation beyond MLflow's schema).
Run: ``MLFLOW_TRACKING_URI=... BENCH_MODEL_URI=models:/bigmart_sales@champion
uvicorn bench.fastapi_pyfunc:app``.
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from typing import Any

import mlflow.pyfunc
import pandas as pd
from fastapi import FastAPI
from pydantic import BaseModel

MODEL: dict[str, Any] = {}


@asynccontextmanager
async def lifespan(app: FastAPI):
    MODEL["model"] = mlflow.pyfunc.load_model(
        os.environ.get("BENCH_MODEL_URI", "models:/bigmart_sales@champion")
    )
    yield


app = FastAPI(lifespan=lifespan)


class Body(BaseModel):
    records: list[dict[str, Any]]


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/predict")
def predict(body: Body) -> dict[str, Any]:
    frame = pd.DataFrame(body.records)
    predictions = MODEL["model"].predict(frame)  # numbers, or a classifier's labels
    return {"predictions": [v.item() if hasattr(v, "item") else v for v in predictions]}
