"""Serving benchmark: the champion's bento against FastAPI + pyfunc and bare BentoML, medians.

Measured on this machine with the issue's targets (a 2-core machine the client shares):

* single-record ``POST /predict`` at concurrency 1, 8 and 32 (``wrk``, one thread, a Lua script
  for the body, ``--duration`` s per run), requests/s, p50/p99 latency, non-2xx and errors, for
  - the bento as users get it (``bentoml serve`` of the built bento, prediction log on, one
    worker), and with the log off;
  - ``bench/fastapi_pyfunc.py``: FastAPI + ``mlflow.pyfunc`` predicting each request alone
    (the replaced projects' pattern: no cleaning, no checks);
  - bare endpoints parsing the same body and answering a constant: on BentoML's stack
    (``bench/bare_service.py``) and on uvicorn + Starlette (``bench/bare_starlette.py``);
  - with ``--depends``: BentoML's adaptive batching through ``bentoml.depends``
    (``bench/depends_service.py``) instead of the service's micro-batcher;
* one 10,000-record request to the bento, as records and as columns, against in-process scoring
  of the same rows (the scorer: clean, validate, predict, on an in-memory DataFrame).

All servers of a use case run at once, idle but one: every figure is the median of ``--rounds``
runs (3), the rounds interleaved so that load from elsewhere on the machine hits every server
alike. BigMart carries the targets; an obesity classifier (answers with probabilities) and
m5_sales (lags from the stored history) are reported. Uses the champions in ``MLOPS_HOME``
(after ``make demo``); without them it trains small ones in a temporary home first. Writes
``bench/results/serving.json`` and ``bench/results/serving.md``.

Run: ``python bench/serving.py`` (``make bench``); ``--use-cases bigmart_sales`` for the targets
alone.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from mlops_assets_tests.harness.bento import start_bento as serve_bento
from mlops_assets_tests.harness.processes import ServedProcess, free_port, start_server

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
TARGETED = "bigmart_sales"
USE_CASES = ("bigmart_sales", "obesity", "m5_sales")
CONCURRENCY = (1, 8, 32)
STARTUP_TIMEOUT_S = 240
COMMAND = "python bench/serving.py"

BENTO = "bento (log on)"
BENTO_UNLOGGED = "bento (log off)"
FASTAPI = "fastapi_pyfunc"
BARE = "bare_bentoml"
STARLETTE = "bare_starlette"
DEPENDS = "bentoml_depends"

BIGMART_RECORD = {
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


# ------------------------------------------------------------------ the models


def environment() -> Any:
    """The environment in force (``MLOPS_HOME`` and the stores), resolved now."""
    from mlops_assets.environment import Environment

    return Environment.from_env()


def specs() -> dict[str, Any]:
    from mlops_assets.specs import use_case_specs

    return use_case_specs(environment().specs_dirs)


def ensure_champions(use_cases: list[str], train_if_missing: bool) -> dict[str, dict[str, Any]]:
    """Each use case's champion bento in MLOPS_HOME (trained in a temporary home if missing)."""
    from mlops_assets.registry.status import champion_ref

    env = environment()
    missing = [uc for uc in use_cases if champion_ref(specs()[uc], env.tracking()) is None]
    if missing:
        if not train_if_missing:
            raise SystemExit(f"no champion for {missing} in MLOPS_HOME; run `make demo` first")
        home = Path(tempfile.mkdtemp(prefix="bench-home-"))
        os.environ["MLOPS_HOME"] = str(home)
        for variable in ("MLFLOW_TRACKING_URI", "BENTOML_HOME", "DAGSTER_HOME"):
            os.environ.pop(variable, None)
        os.environ.pop("MLOPS_STORAGE_URI", None)
        print(f"no champion for {missing}: training {use_cases} in {home}", flush=True)
        train(use_cases)
    return {uc: champion_bento(uc) for uc in use_cases}


def train(use_cases: list[str]) -> None:
    from mlops_assets.ops.demo import land_generated_days, land_history
    from mlops_assets.ops.launch import refresh

    env = environment()
    for use_case in use_cases:
        if specs()[use_case].task == "forecast":
            land_history(env, use_case, days=120, seed=7)
        else:
            land_generated_days(env, use_case, days=7, rows=600, seed=7)
        if not refresh(specs()[use_case], env, n_trials=8, seed=7).success:
            raise SystemExit(f"training the benchmark's {use_case} champion failed")


def champion_bento(use_case: str) -> dict[str, Any]:
    from mlops_assets.ops.serve import bento_store

    store = bento_store(environment())
    build = store.ensure_champion_bento(specs()[use_case])
    if build.stale_source:  # measure the service code of this checkout, not an older build
        store.api().bentos.delete(build.bento_tag)
        build = store.ensure_champion_bento(specs()[use_case])
    champion = build.models[None]
    pipeline = store.api().sklearn.load_model(build.model_tag)
    return {
        "use_case": use_case,
        "bento_tag": build.bento_tag,
        "model_tag": build.model_tag,
        "model_name": champion.model_name,
        "model_version": champion.version,
        "family": type(pipeline.named_steps["model"]).__name__,
    }


def generated_records(use_case: str, n: int, seed: int = 5) -> list[dict[str, Any]]:
    """``n`` raw records as landed (dirty spellings, sentinels, missing values), no target.

    A forecast's records are the days after its stored history: series, date and covariates.
    """
    from mlops_assets.generators import get_generator
    from mlops_assets.ops.demo import HISTORY_END

    spec = specs()[use_case]
    generator: Any = get_generator(spec.generator or use_case)
    if spec.task == "forecast":
        day = HISTORY_END + dt.timedelta(days=1)
        frame = generator.history(day, day + dt.timedelta(days=6), seed)
        frame["date"] = frame["date"].astype(str).str[:10]
    else:
        frame = generator.generate(n, dt.date(2025, 6, 1), seed=seed)
    fields = [c.name for c in spec.input_columns]
    rows = [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in frame[fields].astype(object).to_dict("records")
    ]
    return rows[:n]


# ------------------------------------------------------------------ servers


def start(name: str, command: list[str], env: dict[str, str], cwd: Path, probe: str, port: int):
    handle, log = tempfile.mkstemp(prefix=f"bench-{name.split()[0]}-", suffix=".log")
    os.close(handle)
    server = start_server(
        name,
        command,
        port=port,
        ready_path=probe,
        log_path=Path(log),
        env=env,
        cwd=cwd,
        timeout=STARTUP_TIMEOUT_S,
    )
    server.name = name
    return server


def python_path() -> str:
    """``PYTHONPATH`` of the servers: this checkout first (for ``bench.*`` and the package)."""
    return os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))


def base_env() -> dict[str, str]:
    from mlops_assets.ops.serve import serve_environment

    return {**serve_environment(environment()), "PYTHONPATH": python_path()}


def start_bento(use_case: str, model: dict[str, Any], log_on: bool, folder: Path) -> ServedProcess:
    """``bentoml serve`` of the built bento (the harness's launcher), stores under ``folder``.

    A forecast reads its history from a copy of the home's stored ``clean_data``, so the
    benchmark's prediction log never lands in the home's lake.
    """
    if specs()[use_case].task == "forecast":
        copy_history(use_case, folder / "storage")
    server = serve_bento(
        model["bento_tag"],
        folder,
        timeout=STARTUP_TIMEOUT_S,
        PYTHONPATH=python_path(),
        MLOPS_SERVING_WORKERS="1",
        MLOPS_PREDICTION_LOG="on" if log_on else "off",
    )
    server.name = BENTO if log_on else BENTO_UNLOGGED
    return server


def copy_history(use_case: str, storage: Path) -> None:
    from mlops_assets import names
    from mlops_assets.storage.objectstore import LocalObjectStore

    source = environment().lake()
    target = LocalObjectStore(storage)
    prefix = "/".join(names.asset_path(use_case, names.CLEAN_DATA)) + "/"
    for info in source.list(prefix):
        target.put_bytes(info.key, source.get_bytes(info.key))


def start_fastapi(model: dict[str, Any]) -> ServedProcess:
    port = free_port()
    env = {
        **base_env(),
        "MLFLOW_TRACKING_URI": environment().tracking_uri,
        "BENCH_MODEL_URI": f"models:/{model['model_name']}@champion",
        "BENCH_USE_CASE": model["use_case"],
    }
    command = [
        sys.executable, "-m", "uvicorn", "bench.fastapi_pyfunc:app",
        "--port", str(port), "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    return start(FASTAPI, command, env, ROOT, "/healthz", port)


def start_bare_bento() -> ServedProcess:
    from mlops_assets.ops.serve import bentoml_executable

    port = free_port()
    command = [bentoml_executable(), "serve", "bare_service:BareService", "--port", str(port)]
    env = {**base_env(), "MLOPS_SERVING_WORKERS": "1"}
    return start(BARE, command, env, BENCH, "/readyz", port)


def start_bare_starlette() -> ServedProcess:
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", "bench.bare_starlette:app",
        "--port", str(port), "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    return start(STARLETTE, command, base_env(), ROOT, "/healthz", port)


def start_depends_bento(model: dict[str, Any]) -> ServedProcess:
    from mlops_assets.ops.serve import bentoml_executable

    port = free_port()
    env = {**base_env(), "MLOPS_SERVING_WORKERS": "1", "BENCH_MODEL_TAG": model["model_tag"]}
    command = [bentoml_executable(), "serve", "depends_service:DependsService", "--port", str(port)]
    return start(DEPENDS, command, env, BENCH, "/readyz", port)


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
    raw = json.loads([ln for ln in done.stdout.splitlines() if ln.startswith("{")][-1])
    seconds = raw["duration_us"] / 1e6
    return {
        "req_per_s": round(raw["requests"] / seconds, 1),
        "p50_ms": round(raw["p50_us"] / 1000, 2),
        "p99_ms": round(raw["p99_us"] / 1000, 2),
        "non_2xx": raw["non2xx"],
        "errors": raw["socket_errors"] + raw["timeouts"],
    }


def warm_up(server: ServedProcess, body: bytes) -> None:
    """First requests import lazily loaded code; the answer must be a 200."""
    for _ in range(20):
        answer = httpx.post(
            server.url + "/predict",
            content=body,
            headers={"content-type": "application/json"},
            timeout=60,
        )
    if answer.status_code != 200:
        raise SystemExit(f"{server.name} answered {answer.status_code}: {answer.text[:500]}")


def load_rounds(
    servers: list[ServedProcess], body_file: Path, duration: int, rounds: int
) -> list[dict[str, Any]]:
    """Every server at every concurrency, ``rounds`` times, interleaved; medians per figure."""
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for number in range(1, rounds + 1):
        for concurrency in CONCURRENCY:
            for server in servers:
                run = wrk(server.url, body_file, concurrency, duration)
                runs.setdefault((server.name, concurrency), []).append(run)
                print(json.dumps({"round": number, "server": server.name, "c": concurrency, **run}))
    rows = []
    for (name, concurrency), found in runs.items():
        rows.append(
            {
                "server": name,
                "concurrency": concurrency,
                **{
                    key: statistics.median(r[key] for r in found)
                    for key in ("req_per_s", "p50_ms", "p99_ms")
                },
                "non_2xx": sum(r["non_2xx"] for r in found),
                "errors": sum(r["errors"] for r in found),
                "runs": found,
            }
        )
    return rows


def timed(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def ten_thousand(url: str, model: dict[str, Any], rounds: int = 7) -> dict[str, float]:
    """One 10,000-record request (records body, columnar body) against in-process scoring of
    the same rows, interleaved, medians of ``rounds``.

    In-process runs in this process with the bento's model and the libraries' default threads,
    while the server is idle: the scorer (clean, validate, predict) on the rows as an
    in-memory DataFrame, and as the service's own request path (records to columns, checks).
    The request bodies are encoded beforehand; answers are read, not decoded.
    """
    import pandas as pd

    from mlops_assets.features.cleaning import clean_frame
    from mlops_assets.features.pipeline import model_input
    from mlops_assets.ops.serve import bento_store
    from mlops_assets.serving.records import columns_of
    from mlops_assets.serving.scoring import Scorer
    from mlops_assets.training.families import predict_frame

    spec = specs()[TARGETED]
    pipeline = bento_store(environment()).api().sklearn.load_model(model["model_tag"])
    scorer = Scorer(spec, pipeline, spec.name, "bench")
    records = generated_records(TARGETED, 10_000)
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
        "http_records_s": lambda: post("/predict", records_body),
        "http_columns_s": lambda: post("/predict_columns", columns_body),
        "in_process_s": lambda: scorer.score_frame(pd.DataFrame.from_records(records)),
        "frame_predict_s": frame_predict,
        "records_scorer_s": lambda: scorer.score_requests([columns_of(records, spec)], ["x"]),
    }
    for action in actions.values():
        action()
    samples: dict[str, list[float]] = {name: [] for name in actions}
    for _ in range(rounds):
        for name, action in actions.items():
            samples[name].append(timed(action))
    result = {name: statistics.median(values) for name, values in samples.items()}
    result["records_ratio"] = result["http_records_s"] / result["in_process_s"]
    result["columns_ratio"] = result["http_columns_s"] / result["in_process_s"]
    return result


# ------------------------------------------------------------------ one use case


def bench_use_case(use_case: str, model: dict[str, Any], args: argparse.Namespace) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"bench-serving-{use_case}-"))
    body_file = work / "one.json"
    record = BIGMART_RECORD if use_case == TARGETED else generated_records(use_case, 1)[0]
    body_file.write_text(json.dumps({"records": [record]}))
    forecast = specs()[use_case].task == "forecast"
    starters: list[Callable[[], ServedProcess]] = [
        lambda: start_bento(use_case, model, True, work / "log-on"),
    ]
    if use_case == TARGETED:
        starters.append(lambda: start_bento(use_case, model, False, work / "log-off"))
    if not forecast:  # the pyfunc baseline cannot forecast: it has no history to read lags from
        starters.append(lambda: start_fastapi(model))
    starters.append(start_bare_bento)
    if use_case == TARGETED:
        starters.append(start_bare_starlette)
        if args.depends:
            starters.append(lambda: start_depends_bento(model))
    servers: list[ServedProcess] = []
    result: dict[str, Any] = {"model": model, "record": record}
    try:
        for starter in starters:
            servers.append(starter())
        for server in servers:
            warm_up(server, body_file.read_bytes())
        result["load"] = load_rounds(servers, body_file, args.duration, args.rounds)
        if use_case == TARGETED:
            result["ten_thousand"] = ten_thousand(servers[0].url, model)
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return result


# ------------------------------------------------------------------ targets and report


def at(load: list[dict[str, Any]], server: str, concurrency: int) -> dict[str, Any]:
    return next(r for r in load if r["server"] == server and r["concurrency"] == concurrency)


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with its measured value and whether it is met."""
    load, big = result["load"], result["ten_thousand"]

    def target(name: str, value: float, goal: str, met: bool, unit: str = "x") -> dict:
        return {"target": name, "value": round(value, 2), "unit": unit, "goal": goal, "met": met}

    one, fastapi_one, bare_one = at(load, BENTO, 1), at(load, FASTAPI, 1), at(load, BARE, 1)
    many, fastapi_many, bare_many = at(load, BENTO, 32), at(load, FASTAPI, 32), at(load, BARE, 32)
    failed = sum(r["non_2xx"] + r["errors"] for r in load if r["server"].startswith("bento ("))
    return [
        target(
            "c=1 requests/s vs FastAPI + pyfunc",
            one["req_per_s"] / fastapi_one["req_per_s"],
            ">= 1.5x",
            one["req_per_s"] >= 1.5 * fastapi_one["req_per_s"],
        ),
        target(
            "c=1 p50 vs the bare BentoML endpoint's",
            one["p50_ms"] / bare_one["p50_ms"],
            "<= 3x",
            one["p50_ms"] <= 3 * bare_one["p50_ms"],
        ),
        target(
            "c=32 requests/s vs FastAPI + pyfunc",
            many["req_per_s"] / fastapi_many["req_per_s"],
            ">= 4x",
            many["req_per_s"] >= 4 * fastapi_many["req_per_s"],
        ),
        target(
            "c=32 requests/s vs the bare BentoML endpoint",
            100 * many["req_per_s"] / bare_many["req_per_s"],
            ">= 80%",
            many["req_per_s"] >= 0.8 * bare_many["req_per_s"],
            "%",
        ),
        target(
            "10,000 records as records vs in-process scoring",
            big["records_ratio"],
            "<= 1.5x",
            big["records_ratio"] <= 1.5,
        ),
        target(
            "10,000 records as columns vs in-process scoring",
            big["columns_ratio"],
            "<= 1.5x",
            big["columns_ratio"] <= 1.5,
        ),
        target("non-2xx answers and errors of the bento, every run", failed, "0", failed == 0, ""),
    ]


def load_table(load: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| server | c=1 req/s | c=1 p50 ms | c=8 req/s | c=32 req/s | c=32 p50 ms | c=32 p99 ms "
        "| non-2xx + errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in dict.fromkeys(r["server"] for r in load):
        one, eight, many = (at(load, name, c) for c in CONCURRENCY)
        failed = sum(r["non_2xx"] + r["errors"] for r in load if r["server"] == name)
        lines.append(
            f"| {name} | {one['req_per_s']:g} | {one['p50_ms']:g} | {eight['req_per_s']:g} "
            f"| {many['req_per_s']:g} | {many['p50_ms']:g} | {many['p99_ms']:g} | {failed} |"
        )
    return lines


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Serving benchmark",
        "",
        "Every figure is the median of several runs of `wrk` (1 thread, single-record JSON "
        "body, `bench/post.lua`), the rounds interleaved across servers; one worker per server, "
        "one server under load at a time. Each use case says the run it comes from.",
    ]
    for use_case, result in sorted(
        report["use_cases"].items(), key=lambda item: item[0] != TARGETED
    ):
        model, run = result["model"], result.get("run", report)
        machine = run["machine"]
        lines += [
            "",
            f"## {use_case}{' (targets)' if use_case == TARGETED else ' (reported)'}",
            "",
            f"`{run['command']}`, {run['started_at']} on {machine['cpus']} CPUs (load average "
            f"{machine['load_average']} at start), {run['rounds']} rounds of "
            f"{run['duration_s']} s. Model {model['model_name']} v{model['model_version']} "
            f"({model['family']}), bento `{model['bento_tag']}`.",
            "",
            *load_table(result["load"]),
        ]
        if use_case == TARGETED:
            big = result["ten_thousand"]
            lines += [
                "",
                "| 10,000 records | seconds (median of 7, interleaved) | vs in-process scoring |",
                "|---|---:|---:|",
                f"| one HTTP request, JSON records (`/predict`) | {big['http_records_s']:.3f} "
                f"| {big['records_ratio']:.2f}x |",
                f"| one HTTP request, JSON columns (`/predict_columns`) "
                f"| {big['http_columns_s']:.3f} | {big['columns_ratio']:.2f}x |",
                f"| in-process: the scorer on a DataFrame (clean, validate, predict) "
                f"| {big['in_process_s']:.3f} | 1.00x |",
                f"| in-process: clean_frame + predict only | {big['frame_predict_s']:.3f} "
                f"| {big['frame_predict_s'] / big['in_process_s']:.2f}x |",
                f"| in-process: records -> the service's scorer path | "
                f"{big['records_scorer_s']:.3f} | "
                f"{big['records_scorer_s'] / big['in_process_s']:.2f}x |",
                "",
                "### Targets",
                "",
                "| target | measured | goal | |",
                "|---|---:|---:|---|",
                *(
                    f"| {t['target']} | {t['value']:g}{t['unit']} | {t['goal']} "
                    f"| {'MET' if t['met'] else 'MISSED'} |"
                    for t in result["targets"]
                ),
            ]
        if use_case == "m5_sales":
            lines += [
                "",
                "FastAPI + pyfunc is not run for the forecast: the replaced pattern has no stored "
                "history to read a request's lags from. Forecasts take the service's vectorised "
                "path (lags are derived with the training code from the history it holds).",
            ]
    return "\n".join(lines) + "\n"


RUN_KEYS = ("command", "started_at", "machine", "duration_s", "rounds")


def kept_use_cases(measured: list[str]) -> dict[str, Any]:
    """The use cases of the last results not measured now (each keeps the run it came from)."""
    path = RESULTS / "serving.json"
    if not path.exists():
        return {}
    earlier = json.loads(path.read_text())
    kept = {}
    for use_case, result in earlier.get("use_cases", {}).items():
        if use_case not in measured:
            result.setdefault("run", {k: earlier.get(k) for k in RUN_KEYS})
            kept[use_case] = result
    return kept


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--use-cases", nargs="+", default=list(USE_CASES), choices=USE_CASES)
    parser.add_argument("--depends", action="store_true", help="also BentoML's adaptive batching")
    parser.add_argument("--no-train", action="store_true", help="fail without champions")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    models = ensure_champions(args.use_cases, train_if_missing=not args.no_train)
    command = " ".join([COMMAND, *(argv if argv is not None else sys.argv[1:])])
    report: dict[str, Any] = {
        "command": command,
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "load_average": round(os.getloadavg()[0], 2)},
        "duration_s": args.duration,
        "rounds": args.rounds,
        "load_generator": "wrk 1 thread, bench/post.lua",
        "use_cases": {},
    }
    report["use_cases"] = kept_use_cases(args.use_cases)
    for use_case in args.use_cases:
        print(f"== {use_case}", flush=True)
        result = bench_use_case(use_case, models[use_case], args)
        if use_case == TARGETED:
            result["targets"] = targets(result)
        result["run"] = {k: report[k] for k in RUN_KEYS}
        report["use_cases"][use_case] = result
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "serving.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "serving.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
