"""Serving benchmark: the champion's bento against a plain FastAPI + pyfunc server and bare stacks.

Measured in one run on the same rows, one server at a time (the machine has 2 cores):

* single-record ``POST /predict`` at concurrency 1, 8 and 32 (``--duration`` s each, ``wrk`` with
  one thread and a Lua script for the body): requests/s, p50/p99 latency, non-2xx and errors, for
  - the bento (prediction log on, and off),
  - (c) ``bench/depends_service.py``: BentoML's adaptive batching instead of our micro-batcher
    (a batchable inner service through ``bentoml.depends``, same scorer, log off),
  - (a) ``bench/fastapi_pyfunc.py``: FastAPI + ``mlflow.pyfunc`` predicting each request alone,
  - (b) bare endpoints that parse the same body and answer a constant: on BentoML's stack
    (``bench/bare_service.py``) and on plain uvicorn + Starlette (``bench/bare_starlette.py``);
* one 10,000-record request to the bento against in-process scoring of the same rows.

Uses the champion in ``MLOPS_HOME`` (after ``make demo``); without one it trains a small one in a
temporary home first. Writes ``bench/results/serving.json`` and ``bench/results/serving.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from mlops_assets_tests.harness.bento import start_bento as serve_bento
from mlops_assets_tests.harness.processes import ServedProcess, free_port, start_server

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
USE_CASE = "bigmart_sales"
CONCURRENCY = (1, 8, 32)

ONE_RECORD = {
    "Item_Identifier": "FDA15",
    "Item_Weight": 9.3,
    "Item_Fat_Content": "Low Fat",
    "Item_Visibility": 0.016047301,
    "Item_Type": "Dairy",
    "Item_MRP": 249.8092,
    "Outlet_Identifier": "OUT049",
    "Outlet_Establishment_Year": 1999.0,
    "Outlet_Size": "Medium",
    "Outlet_Location_Type": "Tier 1",
    "Outlet_Type": "Supermarket Type1",
}


# ------------------------------------------------------------------ the model


def environment() -> Any:
    """The environment in force (``MLOPS_HOME`` and the stores), resolved now."""
    from mlops_assets.environment import Environment

    return Environment.from_env()


def bentoml_store() -> Any:
    """The ``bentoml`` module pointed at the environment's BentoML store."""
    from mlops_assets.bentos.build import bentoml_api

    return bentoml_api(environment().bentoml_home)


def ensure_champion(train_if_missing: bool) -> dict[str, Any]:
    """The champion's bento in MLOPS_HOME (trained in a temporary home when there is none)."""
    from mlops_assets.ops.serve import bento_store
    from mlops_assets.registry.status import champion_ref
    from mlops_assets.specs import use_case_specs

    env = environment()
    spec = use_case_specs(env.specs_dirs)[USE_CASE]
    if champion_ref(spec, env.tracking()) is None:
        if not train_if_missing:
            raise SystemExit(f"no champion for {USE_CASE} in MLOPS_HOME; run `make demo` first")
        home = Path(tempfile.mkdtemp(prefix="bench-home-"))
        os.environ["MLOPS_HOME"] = str(home)
        for variable in ("MLFLOW_TRACKING_URI", "BENTOML_HOME", "DAGSTER_HOME"):
            os.environ.pop(variable, None)
        print(f"no champion: training one in {home}", flush=True)
        from mlops_assets.ops.demo import land_generated_days
        from mlops_assets.ops.launch import refresh

        env = environment()
        land_generated_days(env, USE_CASE, days=7, rows=600, seed=7)
        outcome = refresh(spec, env, n_trials=8, seed=7)
        if not outcome.success:
            raise SystemExit("training the benchmark's champion failed")
    store = bento_store(env)
    build = store.ensure_champion_bento(spec)
    if build.stale_source:  # measure the service code of this checkout, not an older build
        store.api().bentos.delete(build.bento_tag)
        build = store.ensure_champion_bento(spec)
    champion = build.models[None]  # bigmart_sales has one model slot
    return {
        "bento_tag": build.bento_tag,
        "model_tag": build.model_tag,
        "model_name": champion.model_name,
        "model_version": champion.version,
    }


def benchmark_rows(n: int) -> list[dict[str, Any]]:
    """``n`` raw records as landed (dirty spellings, zero visibilities, missing weights)."""
    import math

    from mlops_assets.generators import get_generator

    frame = get_generator(USE_CASE).generate(n, dt.date(2025, 6, 1), seed=5)
    frame = frame.drop(columns=["Item_Outlet_Sales"])
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in frame.to_dict("records")
    ]


# ------------------------------------------------------------------ servers


STARTUP_TIMEOUT_S = 180


def start(
    name: str, command: list[str], env: dict[str, str], cwd: Path, port: int, probe: str
) -> ServedProcess:
    """A server started by the harness's launcher: its own session, ready when ``probe``
    answers 200, stopped with its whole tree; its log in a temporary file."""
    handle, log = tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".log")
    os.close(handle)
    return start_server(
        name,
        command,
        port=port,
        ready_path=probe,
        log_path=Path(log),
        env=env,
        cwd=cwd,
        timeout=STARTUP_TIMEOUT_S,
    )


def python_path() -> str:
    """``PYTHONPATH`` of the servers: this checkout first (for ``bench.*`` and the package)."""
    return os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))


def base_env() -> dict[str, str]:
    from mlops_assets.ops.serve import serve_environment

    env = serve_environment(environment())
    env["PYTHONPATH"] = python_path()
    return env


def start_bento(bento_tag: str, workers: int, log_on: bool, folder: Path) -> ServedProcess:
    """The bento under ``bentoml serve``, by the tests' launcher; its stores under ``folder``."""
    return serve_bento(
        bento_tag,
        folder,
        timeout=STARTUP_TIMEOUT_S,
        PYTHONPATH=python_path(),
        MLOPS_SERVING_WORKERS=str(workers),
        MLOPS_PREDICTION_LOG="on" if log_on else "off",
    )


def start_fastapi(model_name: str) -> ServedProcess:
    port = free_port()
    env = {
        **base_env(),
        "MLFLOW_TRACKING_URI": environment().tracking_uri,
        "BENCH_MODEL_URI": f"models:/{model_name}@champion",
    }
    command = [
        sys.executable, "-m", "uvicorn", "bench.fastapi_pyfunc:app",
        "--port", str(port), "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    return start("fastapi_pyfunc", command, env, ROOT, port, "/healthz")


def start_depends_bento(model_tag: str, workers: int) -> ServedProcess:
    from mlops_assets.ops.serve import bentoml_executable

    port = free_port()
    env = {**base_env(), "MLOPS_SERVING_WORKERS": str(workers), "BENCH_MODEL_TAG": model_tag}
    command = [
        bentoml_executable(), "serve", "depends_service:DependsService", "--port", str(port),
    ]  # fmt: skip
    return start("bentoml_depends", command, env, BENCH, port, "/readyz")


def start_bare_bento(workers: int) -> ServedProcess:
    from mlops_assets.ops.serve import bentoml_executable

    port = free_port()
    env = {**base_env(), "MLOPS_SERVING_WORKERS": str(workers)}
    command = [bentoml_executable(), "serve", "bare_service:BareService", "--port", str(port)]
    return start("bare_bentoml", command, env, BENCH, port, "/readyz")


def start_bare_starlette() -> ServedProcess:
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", "bench.bare_starlette:app",
        "--port", str(port), "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    return start("bare_starlette", command, base_env(), ROOT, port, "/healthz")


# ------------------------------------------------------------------ load


def wrk(url: str, body_file: Path, concurrency: int, duration: int) -> dict[str, Any]:
    """One ``wrk`` run; the Lua script prints a JSON line with counts and latency percentiles."""
    command = [
        "wrk", "-t", "1", "-c", str(concurrency), "-d", f"{duration}s", "--timeout", "10s",
        "-s", str(BENCH / "post.lua"), url + "/predict",
    ]  # fmt: skip
    done = subprocess.run(
        command,
        env={**os.environ, "BODY_FILE": str(body_file)},
        capture_output=True,
        text=True,
        check=True,
    )
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("{")][-1]
    raw = json.loads(line)
    seconds = raw["duration_us"] / 1e6
    return {
        "concurrency": concurrency,
        "requests": raw["requests"],
        "req_per_s": round(raw["requests"] / seconds, 1),
        "p50_ms": round(raw["p50_us"] / 1000, 2),
        "p99_ms": round(raw["p99_us"] / 1000, 2),
        "non_2xx": raw["non2xx"],
        "errors": raw["socket_errors"] + raw["timeouts"],
    }


def load_series(server: ServedProcess, body_file: Path, duration: int) -> list[dict[str, Any]]:
    for _ in range(20):  # warm up: first requests import lazily loaded code
        httpx.post(
            server.url + "/predict",
            content=body_file.read_bytes(),
            headers={"content-type": "application/json"},
            timeout=30,
        )
    rows = []
    for concurrency in CONCURRENCY:
        row = {"server": server.name, **wrk(server.url, body_file, concurrency, duration)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def timed(action: Any) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def ten_thousand(
    url: str, model_tag: str, records: list[dict[str, Any]], rounds: int = 7
) -> dict[str, float]:
    """One 10,000-record request (records body, columnar body) against in-process scoring of
    the same rows, interleaved.

    Rounds alternate the three measurements so that load from elsewhere on the machine hits
    them alike; each result is the median. In-process runs in this process with the bento's
    model and the libraries' default threads, while the server is idle. The request bodies are
    encoded beforehand and the answers are read, not decoded.
    """
    import pandas as pd

    from mlops_assets.features.cleaning import clean_frame
    from mlops_assets.features.pipeline import model_input
    from mlops_assets.serving.records import columns_of
    from mlops_assets.serving.scoring import Scorer
    from mlops_assets.specs import use_case_specs
    from mlops_assets.training.families import predict_frame

    bentoml = bentoml_store()
    pipeline = bentoml.sklearn.load_model(model_tag)
    spec = use_case_specs(environment().specs_dirs)[USE_CASE]
    scorer = Scorer(spec, pipeline, spec.name, "bench")

    names = [c.name for c in spec.input_columns]
    records_body = json.dumps({"records": records}).encode()
    columns_body = json.dumps({"columns": {n: [r[n] for r in records] for n in names}}).encode()

    host, port = url.removeprefix("http://").split(":")

    def post(route: str, body: bytes) -> None:
        """One request with the standard library's client: httpx alone added 20 ms here."""
        connection = http.client.HTTPConnection(host, int(port), timeout=120)
        connection.request("POST", route, body=body, headers={"content-type": "application/json"})
        answer = connection.getresponse()
        answer.read()
        connection.close()
        if answer.status != 200:
            raise RuntimeError(f"{route} answered {answer.status}")

    def frame_predict() -> None:
        cleaned, _ = clean_frame(pd.DataFrame.from_records(records), spec)
        predict_frame(pipeline, model_input(cleaned, spec), spec)

    actions = {
        "http_s": lambda: post("/predict", records_body),
        "http_columns_s": lambda: post("/predict_columns", columns_body),
        "frame_predict_s": frame_predict,
        "records_scorer_s": lambda: scorer.score_requests([columns_of(records, spec)], ["x"]),
    }
    for action in actions.values():
        action()
    samples: dict[str, list[float]] = {name: [] for name in actions}
    for _ in range(rounds):
        for name, action in actions.items():
            samples[name].append(timed(action))
    return {name: statistics.median(values) for name, values in samples.items()}


# ------------------------------------------------------------------ report


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Serving benchmark",
        "",
        f"{result['started_at']} on {result['machine']['cpus']} CPUs "
        f"(load average {result['machine']['load_average']} at start); "
        f"model {result['model']['model_name']} v{result['model']['model_version']} "
        f"({result['model']['family']}), bento `{result['model']['bento_tag']}`.",
        f"Load generator: `wrk` (1 thread, {result['duration_s']} s per concurrency, "
        "single-record JSON body, Lua script `bench/post.lua`). One server at a time.",
        "",
        "| server | concurrency | req/s | p50 ms | p99 ms | non-2xx | errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["load"]:
        lines.append(
            f"| {row['server']} | {row['concurrency']} | {row['req_per_s']} | {row['p50_ms']} "
            f"| {row['p99_ms']} | {row['non_2xx']} | {row['errors']} |"
        )
    big = result["ten_thousand"]
    lines += [
        "",
        "| 10,000 records | seconds (median of 7, interleaved) | vs in-process predict |",
        "|---|---:|---:|",
        f"| one HTTP request to the bento, JSON records (`/predict`) | {big['http_s']:.3f} "
        f"| {big['ratio']:.2f}x |",
        f"| one HTTP request to the bento, JSON columns (`/predict_columns`) "
        f"| {big['http_columns_s']:.3f} | {big['columns_ratio']:.2f}x |",
        f"| in-process: DataFrame -> clean_frame -> predict | {big['frame_predict_s']:.3f} "
        "| 1.00x |",
        f"| in-process: records -> Scorer (the service's path) | {big['records_scorer_s']:.3f} "
        f"| {big['records_scorer_s'] / big['frame_predict_s']:.2f}x |",
        "",
        "The 10,000 records are generated raw rows (dirty spellings, zero visibilities, missing "
        "weights); the client is Python's `http.client` with the body encoded beforehand.",
        "",
        "## Targets",
        "",
    ]
    lines += [f"- {check}" for check in result["targets"]]
    return "\n".join(lines) + "\n"


def targets(load: list[dict[str, Any]], big: dict[str, float], main: str) -> list[str]:
    def at(server: str, concurrency: int) -> dict[str, Any]:
        return next(r for r in load if r["server"] == server and r["concurrency"] == concurrency)

    bento, fastapi = at(main, 32), at("fastapi_pyfunc", 32)
    bare, depends = at("bare_bentoml", 32), at("bentoml_depends", 32)
    ratio = bento["req_per_s"] / max(fastapi["req_per_s"], 1e-9)
    unlogged = at("bento (log off)", 32)
    faster = "micro-batcher" if unlogged["req_per_s"] >= depends["req_per_s"] else "depends"
    return [
        f"batching, log off, concurrency 32: our micro-batcher {unlogged['req_per_s']} req/s "
        f"({unlogged['non_2xx'] + unlogged['errors']} failed) vs BentoML batchable inner "
        f"service via bentoml.depends {depends['req_per_s']} req/s "
        f"({depends['non_2xx'] + depends['errors']} failed): the {faster} is faster here",
        f"{'MET' if bento['non_2xx'] + bento['errors'] == 0 else 'MISSED'}: {main} answered "
        f"every request at concurrency 32 ({bento['non_2xx']} non-2xx, {bento['errors']} errors)",
        f"{'MET' if ratio >= 2 else 'MISSED'}: {main} at concurrency 32 is {ratio:.2f}x the "
        f"throughput of FastAPI + pyfunc (target >= 2x)",
        f"{'MET' if big['columns_ratio'] <= 1.5 else 'MISSED'}: a 10,000-record request takes "
        f"{big['columns_ratio']:.2f}x in-process predict as columns (`/predict_columns`) and "
        f"{big['ratio']:.2f}x as JSON records (`/predict`) (target <= 1.5x)",
        f"{main} reaches {bento['req_per_s'] / max(bare['req_per_s'], 1e-9):.0%} of the bare "
        f"BentoML endpoint's throughput at concurrency 32 "
        f"({bento['req_per_s']} vs {bare['req_per_s']} req/s)",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=15, help="seconds per concurrency")
    parser.add_argument("--workers", type=int, default=1, help="bento worker processes")
    parser.add_argument("--no-train", action="store_true", help="fail without a champion")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    model = ensure_champion(train_if_missing=not args.no_train)
    model["family"] = _model_family(model["model_tag"])
    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    single = work / "one.json"
    single.write_text(json.dumps({"records": [ONE_RECORD]}))
    records = benchmark_rows(10_000)
    result: dict[str, Any] = {
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "load_average": round(os.getloadavg()[0], 2)},
        "duration_s": args.duration,
        "load_generator": "wrk 1 thread, bench/post.lua",
        "model": model,
        "load": [],
    }
    main_name = f"bento (log on, {args.workers} worker{'s' * (args.workers > 1)})"
    starters = [
        (main_name, lambda: start_bento(model["bento_tag"], args.workers, True, work / "log-on")),
        (
            "bento (log off)",
            lambda: start_bento(model["bento_tag"], args.workers, False, work / "log-off"),
        ),
        ("bentoml_depends", lambda: start_depends_bento(model["model_tag"], args.workers)),
        ("fastapi_pyfunc", lambda: start_fastapi(model["model_name"])),
        ("bare_bentoml", lambda: start_bare_bento(args.workers)),
        ("bare_starlette", start_bare_starlette),
    ]
    big: dict[str, float] = {}
    for name, start in starters:
        server = start()
        server.name = name
        try:
            result["load"].extend(load_series(server, single, args.duration))
            if name == main_name:
                big = ten_thousand(server.url, model["model_tag"], records)
        finally:
            server.stop()
    big["ratio"] = big["http_s"] / big["frame_predict_s"]
    big["columns_ratio"] = big["http_columns_s"] / big["frame_predict_s"]
    result["ten_thousand"] = {k: round(v, 4) for k, v in big.items()}
    result["targets"] = targets(result["load"], big, main_name)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "serving.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "serving.md").write_text(markdown(result))
    print(markdown(result))
    shutil.rmtree(work, ignore_errors=True)
    return 0


def _model_family(model_tag: str) -> str:
    pipeline = bentoml_store().sklearn.load_model(model_tag)
    return type(pipeline.named_steps["model"]).__name__


if __name__ == "__main__":
    sys.exit(main())
