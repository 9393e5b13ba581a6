"""Baseline (a) of the serving benchmark: the pattern the platform replaces.

A plain FastAPI app that loads ``models:/<name>@champion`` with ``mlflow.pyfunc`` and predicts
every request on its own (no batching, no cleaning, no validation beyond MLflow's schema). It
adds the spec's derived features first (``Outlet_Age``, ``Item_Category``, ...: the model's
signature asks for them), as the notebook's own feature code did before calling the model.
Run: ``MLFLOW_TRACKING_URI=... BENCH_MODEL_URI=models:/bigmart_sales@champion
BENCH_USE_CASE=bigmart_sales uvicorn bench.fastapi_pyfunc:app``.
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from typing import Any

import mlflow.pyfunc
import pandas as pd
from fastapi import FastAPI
from pydantic import BaseModel

from mlops_assets.features.derived import with_derived
from mlops_assets.specs import use_case_specs

MODEL: dict[str, Any] = {}


@asynccontextmanager
async def lifespan(app: FastAPI):
    MODEL["model"] = mlflow.pyfunc.load_model(
        os.environ.get("BENCH_MODEL_URI", "models:/bigmart_sales@champion")
    )
    MODEL["spec"] = use_case_specs()[os.environ.get("BENCH_USE_CASE", "bigmart_sales")]
    yield


app = FastAPI(lifespan=lifespan)


class Body(BaseModel):
    records: list[dict[str, Any]]


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/predict")
def predict(body: Body) -> dict[str, Any]:
    frame = with_derived(pd.DataFrame(body.records), MODEL["spec"])
    predictions = MODEL["model"].predict(frame)  # numbers, or a classifier's labels
    return {"predictions": [v.item() if hasattr(v, "item") else v for v in predictions]}
