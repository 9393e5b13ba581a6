"""Full-size M5 on one machine: Kaggle-layout files of N series x 1,941 days, through ``mlops``.

For each size (``--sizes``, default 1000,5000,30490 series) it generates the three files of
Kaggle's M5 in their exact layout (wide ``sales_train_evaluation.csv``, ``calendar.csv``,
``sell_prices.csv``: intermittent sales, weekly seasonality, SNAP days for FOODS, weekly prices
with promotions, items starting on different days), then runs the stages a user runs, each
through the public interface (``mlops land`` / ``refresh`` / ``serve``) in its own process, and
records wall time and the peak memory of the whole process tree (sampled every 0.2 s):

- ``land``: the three files landed;
- ``ingest``: ``mlops refresh --no-train`` (raw, clean, checks, monitoring of the history);
- ``train``: ``mlops refresh`` with the spec's real budget (training and test sets, tuning,
  the gate, the bento);
- ``serve``: ``mlops serve``, then forecasts of the day after the history for every series in
  requests of 1,000 series (their latency), logged by the service;
- ``day``: that day's extract (one row per series) landed and ingested, its served forecasts
  judged by monitoring.

Stages are resumable: each size keeps its home under ``bench/.work/m5_scale-<size>`` and each
stage's figures go to ``bench/results/m5_scale.json`` as it ends (``--stage`` runs one;
``--fresh`` starts a size again). The full size may take close to two hours.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlops_assets_tests.harness.processes import free_port, start_server

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
WORK = BENCH / ".work"
USE_CASE = "m5_sales"
DAYS = 1941  # d_1 (2011-01-29) to d_1941 (2016-05-22), as Kaggle's evaluation file
FUTURE_DAYS = 28  # the calendar and prices run on past the sales, as Kaggle's do
START = dt.date(2011, 1, 29)
STORES = [("CA", 4), ("TX", 3), ("WI", 3)]
CATEGORIES = [("FOODS", 3, 0.47), ("HOBBIES", 2, 0.19), ("HOUSEHOLD", 2, 0.34)]
REQUEST_SERIES = 1000
STAGES = ("land", "ingest", "train", "serve", "day")
TARGETS = {
    "ingest": ("history ingested", "<= 1800 s, <= 16 GiB"),
    "day": ("a new day ingested and monitored", "<= 60 s"),
    "serve": ("a forecast for 1,000 series", "<= 2 s"),
}


# ------------------------------------------------------------------ Kaggle-layout files


def store_names() -> list[tuple[str, str]]:
    return [(f"{state}_{n}", state) for state, count in STORES for n in range(1, count + 1)]


def series_table(size: int, seed: int) -> pd.DataFrame:
    """``size`` item x store series (items first, as Kaggle orders them), with rates and prices."""
    rng = np.random.default_rng(seed)
    stores = store_names()
    items = -(-size // len(stores))
    kinds = rng.choice(len(CATEGORIES), size=items, p=[c[2] for c in CATEGORIES])
    rows = []
    for index, kind in enumerate(kinds):
        category, departments, _ = CATEGORIES[kind]
        department = f"{category}_{index % departments + 1}"
        item = f"{department}_{index + 1:03d}"
        base = float(rng.lognormal(-0.3, 1.1))  # units a day: most items sell a few, or none
        price = float(np.round(rng.lognormal(1.3, 0.7), 2))
        start = 0 if rng.random() < 0.6 else int(rng.integers(0, DAYS - 200))
        for store, state in stores:
            rows.append(
                {
                    "id": f"{item}_{store}_evaluation",
                    "item_id": item,
                    "dept_id": department,
                    "cat_id": category,
                    "store_id": store,
                    "state_id": state,
                    "rate": base * float(rng.lognormal(0, 0.3)),
                    "price": price,
                    "start": start,
                }
            )
    return pd.DataFrame(rows[:size])


def calendar(days: int) -> pd.DataFrame:
    """Kaggle's calendar.csv columns for ``days`` days from d_1."""
    from mlops_assets.generators.m5_sales import calendar_row

    rows = [calendar_row(START + dt.timedelta(days=n)) for n in range(days)]
    frame = pd.DataFrame(rows)
    dates = pd.to_datetime(frame["date"])
    frame["weekday"] = dates.dt.day_name()
    frame["wday"] = (dates.dt.dayofweek + 2) % 7 + 1
    frame["month"], frame["year"] = dates.dt.month, dates.dt.year
    columns = ["date", "wm_yr_wk", "weekday", "wday", "month", "year", "d", "event_name_1"]
    columns += ["event_type_1", "event_name_2", "event_type_2", "snap_CA", "snap_TX", "snap_WI"]
    return frame[columns]


def week_prices(series: pd.DataFrame, weeks: np.ndarray, seed: int) -> np.ndarray:
    """A price per series and Walmart week: the item's base, promotions 10% of weeks (-20%)."""
    rng = np.random.default_rng(seed + 1)
    promotion = rng.random((len(series), len(weeks))) < 0.1
    drift = 1 + 0.02 * rng.standard_normal((len(series), 1))
    prices = series["price"].to_numpy()[:, None] * drift * np.where(promotion, 0.8, 1.0)
    return np.round(prices, 2)


def sales_matrix(series: pd.DataFrame, days: pd.DataFrame, prices: np.ndarray, seed: int):
    """Units sold per series and day: Poisson of rate x weekday x SNAP x promotion, 0 before
    the item's start and on Christmas (stores closed)."""
    rng = np.random.default_rng(seed + 2)
    weekday = np.array([0.9, 0.85, 0.85, 0.9, 1.05, 1.3, 1.25])[
        pd.to_datetime(days["date"]).dt.dayofweek
    ]
    rate = series["rate"].to_numpy()[:, None] * weekday[None, :]
    foods = (series["cat_id"] == "FOODS").to_numpy()[:, None]
    for state in ("CA", "TX", "WI"):
        snap = days[f"snap_{state}"].to_numpy()[None, :] == 1
        in_state = (series["state_id"] == state).to_numpy()[:, None]
        rate = np.where(foods & in_state & snap, rate * 1.3, rate)
    base = series["price"].to_numpy()[:, None]
    rate = rate * np.where(prices < base * 0.9, 1.6, 1.0)
    sold = rng.poisson(rate).astype(np.int32)
    started = np.arange(len(days))[None, :] >= series["start"].to_numpy()[:, None]
    closed = (pd.to_datetime(days["date"]).dt.strftime("%m-%d") == "12-25").to_numpy()[None, :]
    return np.where(started & ~closed, sold, 0)


def write_files(size: int, folder: Path, seed: int = 7) -> dict[str, Any]:
    """The three Kaggle files, the day-after extract and its requests' rows; their sizes."""
    folder.mkdir(parents=True, exist_ok=True)
    series = series_table(size, seed)
    days = calendar(DAYS + FUTURE_DAYS)
    weeks = np.sort(days["wm_yr_wk"].unique())
    prices = week_prices(series, weeks, seed)
    week_of_day = np.searchsorted(weeks, days["wm_yr_wk"].to_numpy())
    daily_prices = prices[:, week_of_day]
    sold = sales_matrix(series, days, daily_prices, seed)
    keys = ["id", "item_id", "dept_id", "cat_id", "store_id", "state_id"]
    wide = pd.DataFrame(sold[:, :DAYS], columns=[f"d_{n}" for n in range(1, DAYS + 1)])
    pd.concat([series[keys], wide], axis=1).to_csv(
        folder / "sales_train_evaluation.csv", index=False
    )
    days.to_csv(folder / "calendar.csv", index=False)
    start_week = week_of_day[series["start"].to_numpy()]
    rows, columns = np.nonzero(np.arange(len(weeks))[None, :] >= start_week[:, None])
    pd.DataFrame(
        {
            "store_id": series["store_id"].to_numpy()[rows],
            "item_id": series["item_id"].to_numpy()[rows],
            "wm_yr_wk": weeks[columns],
            "sell_price": prices[rows, columns],
        }
    ).to_csv(folder / "sell_prices.csv", index=False)
    extract = series[keys].assign(d=f"d_{DAYS + 1}", sales=sold[:, DAYS])
    extract.to_csv(folder / "extract.csv", index=False)
    requests = series[keys].copy()
    day = days.iloc[DAYS]
    for column in ["date", "d", "wm_yr_wk", "event_name_1", "event_type_1", "event_name_2"]:
        requests[column] = day[column]
    for column in ["event_type_2", "snap_CA", "snap_TX", "snap_WI"]:
        requests[column] = day[column]
    requests["sell_price"] = daily_prices[:, DAYS]
    requests.to_json(folder / "requests.json", orient="records")
    return {
        "series": size,
        "days": DAYS,
        "rows": int(size * DAYS),
        "price_rows": len(rows),
        "files_mb": round(sum(f.stat().st_size for f in folder.glob("*.csv")) / 2**20, 1),
    }


# ------------------------------------------------------------------ measuring a stage


class TreeMemory:
    """Peak resident memory of a process and every descendant, sampled every 0.2 s."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.root = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                tree = [self.root, *self.root.children(recursive=True)]
                total = 0
                for process in tree:
                    try:
                        total += process.memory_info().rss
                    except psutil.Error:
                        pass
                self.peak = max(self.peak, total)
            except psutil.Error:
                return
            self._stop.wait(0.2)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def home_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_"))}
    env.update(
        MLOPS_HOME=str(home),
        DAGSTER_HOME=str(home / "dagster"),
        BENTOML_HOME=str(home / "bentoml"),
        BENTOML_DO_NOT_TRACK="true",
        PYTHONUNBUFFERED="1",
    )
    return env


def mlops(home: Path, *arguments: str, log: Path) -> dict[str, Any]:
    """One ``mlops`` command: its wall time, peak tree memory and exit code."""
    started = time.perf_counter()
    with log.open("a") as out:
        out.write(f"\n$ mlops {' '.join(arguments)}\n")
        out.flush()
        process = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "mlops"), *arguments],
            env=home_env(home),
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        memory = TreeMemory(process.pid)
        code = process.wait()
    peak = memory.stop()
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "peak_gib": round(peak / 2**30, 2),
        "exit_code": code,
    }


def serve_stage(home: Path, files: Path, log: Path) -> dict[str, Any]:
    """``mlops serve`` (the test harness's launcher), then forecasts of every series, timed."""
    port = free_port()
    started = time.perf_counter()
    server = start_server(
        "mlops serve",
        [str(ROOT / ".venv" / "bin" / "mlops"), "serve", USE_CASE, "--port", str(port)],
        port=port,
        ready_path="/readyz",
        log_path=log.with_name("serve.log"),
        env=home_env(home),
        cwd=ROOT,
        timeout=600,
    )
    ready = time.perf_counter()
    memory = TreeMemory(server.process.pid)
    try:
        records = json.loads((files / "requests.json").read_text())
        latencies = []
        for start in range(0, len(records), REQUEST_SERIES):
            body = json.dumps({"records": records[start : start + REQUEST_SERIES]}).encode()
            latencies.append(post(port, body))
        first = latencies[0]
        again = [post(port, json.dumps({"records": records[:REQUEST_SERIES]}).encode())]
        again += [post(port, json.dumps({"records": records[:REQUEST_SERIES]}).encode())]
    finally:
        server.stop(grace=120)
    return {
        "start_s": round(ready - started, 1),
        "requests": len(latencies),
        "first_request_s": round(first, 3),
        "request_s_median": round(statistics.median(latencies + again), 3),
        "peak_gib": round(memory.stop() / 2**30, 2),
        "exit_code": 0,
    }


def post(port: int, body: bytes) -> float:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/predict", body, {"content-type": "application/json"}
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=600) as answer:
        answer.read()
        if answer.status != 200:
            raise RuntimeError(f"/predict answered {answer.status}")
    return time.perf_counter() - started


# ------------------------------------------------------------------ stages and results


def run_stage(stage: str, size: int, home: Path, files: Path, log: Path) -> dict[str, Any]:
    land_day = "2016-05-23"
    if stage == "land":
        figures = write_files(size, files)
        landed = [
            mlops(home, "land", USE_CASE, str(files / name), "--date", land_day, log=log)
            for name in ("calendar.csv", "sell_prices.csv", "sales_train_evaluation.csv")
        ]
        return {
            **figures,
            "seconds": round(sum(r["seconds"] for r in landed), 1),
            "peak_gib": max(r["peak_gib"] for r in landed),
            "exit_code": max(r["exit_code"] for r in landed),
        }
    if stage == "ingest":
        found = mlops(home, "refresh", USE_CASE, "--no-train", log=log)
        return {**found, **step_seconds(dg_instance(home), "ingest")}
    if stage == "train":
        found = mlops(home, "refresh", USE_CASE, log=log)
        return {**found, **train_outcome(home)}
    if stage == "serve":
        return serve_stage(home, files, log)
    if stage == "day":
        landed = mlops(
            home, "land", USE_CASE, str(files / "extract.csv"), "--date", "2016-05-24", log=log
        )
        ingested = mlops(home, "refresh", USE_CASE, "--no-train", log=log)
        return {
            "land_seconds": landed["seconds"],
            "seconds": ingested["seconds"],
            "peak_gib": max(landed["peak_gib"], ingested["peak_gib"]),
            "exit_code": max(landed["exit_code"], ingested["exit_code"]),
        }
    raise ValueError(stage)


def train_outcome(home: Path) -> dict[str, Any]:
    """What the retrain did: its study (trials, the library-defaults trials' scores), the
    tuning step's metadata (cut at the deadline or not) and the promotion gate's decision."""
    import dagster as dg
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{home / 'optuna.db'}"
    newest = max(optuna.get_all_study_summaries(storage), key=lambda s: s.datetime_start)
    trials = optuna.load_study(study_name=newest.study_name, storage=storage).trials
    states = [t.state.name.lower() for t in trials]
    outcome: dict[str, Any] = {
        "trials": {state: states.count(state) for state in sorted(set(states))},
        "defaults_cv": {
            t.user_attrs["library_defaults"]: round(t.value, 4)
            for t in trials
            if t.user_attrs.get("library_defaults") and t.value is not None
        },
    }
    instance = dg_instance(home)
    for asset, fields in (
        (
            "tuned_model",
            ("model_family", "cv_rmsse", "trials_cut_at_deadline", "refit_cut_at_deadline"),
        ),
        ("champion_model", ("promoted", "challenger_rmsse", "baseline_rmsse")),
    ):
        event = instance.get_latest_materialization_event(dg.AssetKey([USE_CASE, asset]))
        if event is not None and event.asset_materialization is not None:
            metadata = event.asset_materialization.metadata
            outcome.update({f: metadata[f].value for f in fields if f in metadata})
    outcome.update(step_seconds(instance, "retrain"))
    return outcome


def dg_instance(home: Path) -> Any:
    """The Dagster instance of a benchmark home."""
    import dagster as dg

    return dg.DagsterInstance.from_config(str(home / "dagster"))


def step_seconds(instance: Any, job: str) -> dict[str, float]:
    """Seconds of each step of the newest run of ``job`` (``<step>_s``)."""
    import dagster as dg

    runs = instance.get_runs(dg.RunsFilter(job_name=f"{USE_CASE}__{job}"), limit=1)
    if not runs:
        return {}
    run = runs[0]
    started: dict[str, float] = {}
    seconds: dict[str, float] = {}
    for record in instance.get_records_for_run(run.run_id).records:
        entry = record.event_log_entry
        event = entry.dagster_event
        if event is None or entry.step_key is None:
            continue
        step = entry.step_key.removeprefix(f"{USE_CASE}__")
        if event.event_type_value == "STEP_START":
            started[step] = entry.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE") and step in started:
            seconds[f"{step}_s"] = round(entry.timestamp - started[step], 1)
    return seconds


def load_results() -> dict[str, Any]:
    path = RESULTS / "m5_scale.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def save_results(results: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "m5_scale.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "m5_scale.md").write_text(report(results))


def report(results: dict[str, Any]) -> str:
    lines = [
        "# bench/m5_scale.py: Kaggle-layout M5 through `mlops land` / `refresh` / `serve`",
        "",
        "Wall time and peak memory of the whole process tree per stage. A stage that failed",
        "shows its exit code; its log is `bench/.work/m5_scale-<size>/bench.log`.",
        "",
        "| series | rows | stage | seconds | peak GiB | exit | notes |",
        "|---:|---:|---|---:|---:|---:|---|",
    ]
    for size, stages in sorted(results.items(), key=lambda item: int(item[0])):
        rows = stages.get("land", {}).get("rows", "")
        for stage in STAGES:
            if stage not in stages:
                continue
            found = stages[stage]
            notes = ", ".join(
                f"{k}={v}"
                for k, v in found.items()
                if k not in {"seconds", "peak_gib", "exit_code", "rows", "at", "commit"}
            )
            lines.append(
                f"| {size} | {rows} | {stage} | {found.get('seconds', '')} | "
                f"{found.get('peak_gib', '')} | {found.get('exit_code', '')} | {notes} |"
            )
    lines += ["", "Targets (issue 15): " + "; ".join(f"{a}: {b}" for a, b in TARGETS.values()), ""]
    return "\n".join(lines)


def commit() -> str:
    try:
        return subprocess.check_output(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True
        ).strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="1000,5000,30490", help="series per run, comma-separated"
    )
    parser.add_argument("--stage", choices=STAGES, help="one stage (default: those not done yet)")
    parser.add_argument("--fresh", action="store_true", help="start each size from nothing")
    args = parser.parse_args(argv)
    results = load_results()
    failed = False
    for size in [int(s) for s in args.sizes.split(",")]:
        home = WORK / f"m5_scale-{size}"
        if args.fresh:
            shutil.rmtree(home, ignore_errors=True)
            results.pop(str(size), None)
        home.mkdir(parents=True, exist_ok=True)
        done = results.setdefault(str(size), {})
        stages = [args.stage] if args.stage else [s for s in STAGES if s not in done]
        for stage in stages:
            print(f"== {size} series: {stage}", flush=True)
            found = run_stage(stage, size, home / "mlops", home / "files", home / "bench.log")
            found.update(at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), commit=commit())
            done[stage] = found
            save_results(results)
            print(f"   {json.dumps(found)}", flush=True)
            if found.get("exit_code"):
                failed = True
                break  # later stages need this one
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
