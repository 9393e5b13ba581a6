"""Cost of a day's work as data grows (issue: continuous training).

Lands 60 days of BigMart batches, ingests days 1..9 and trains a champion, then runs day 10's
daily work (ingest, checks, clean, monitoring) the way the daemon launches a run: a fresh process
(``dagster job execute``), timing it and reading its peak memory. Ingests days 11..59 and measures
day 60 the same way. Targets: day 60 within 1.3x of day 10, each under 15 s on 2 cores.

Run: ``.venv/bin/python bench/daily_cost.py`` (or ``make bench``); writes
``bench/results/daily_cost.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlops_assets_tests.harness.homes import ISOLATED_VARIABLES

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
UC = "bigmart_sales"


def run_day_in_fresh_process(day: str, env: dict[str, str]) -> dict[str, float]:
    """The day's ingest job in a new process, as a run launcher would start it.

    The run is a one-day partition range, the way the landing sensor requests it.
    """
    from mlops_assets.components.ingest import range_tags

    tags = range_tags(day, day)
    command = [
        "/usr/bin/time",
        "-f",
        "MAXRSS_KB=%M",
        sys.executable,
        "-m",
        "dagster",
        "job",
        "execute",
        "-m",
        "mlops_assets.definitions",
        "-j",
        f"{UC}__ingest",
        "--tags",
        json.dumps(tags),
    ]
    started = time.monotonic()
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    output = result.stdout + result.stderr
    if result.returncode != 0 or "RUN_SUCCESS" not in output:
        raise RuntimeError(f"day {day} failed:\n{output[-3000:]}")
    peak = re.search(r"MAXRSS_KB=(\d+)", output)
    return {"seconds": round(seconds, 2), "peak_rss_mb": int(peak.group(1)) / 1024 if peak else -1}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--rows", type=int, default=400)
    parser.add_argument("--first", type=int, default=10, help="the early day measured")
    parser.add_argument("--trials", type=int, default=4)
    args = parser.parse_args(argv)

    home = Path(tempfile.mkdtemp(prefix="mlops-bench-daily-"))
    env = {
        **os.environ,
        "MLOPS_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "BENTOML_HOME": str(home / "bentoml"),
    }
    for variable in ISOLATED_VARIABLES:
        if variable not in {"DAGSTER_HOME", "BENTOML_HOME"}:
            env.pop(variable, None)
    os.environ.clear()
    os.environ.update(env)

    from mlops_assets import names
    from mlops_assets.components.ingest import range_tags
    from mlops_assets.environment import Environment
    from mlops_assets.ops.demo import land_generated_days
    from mlops_assets.ops.launch import execute, instance, load_definitions, retrain_run_config
    from mlops_assets.specs import use_case_specs

    mlops_env = Environment.from_env()
    spec = use_case_specs(mlops_env.specs_dirs)[UC]
    end = dt.date.today()
    days = land_generated_days(mlops_env, UC, args.days, args.rows, seed=11, end=end)
    definitions, dagster_instance = load_definitions(), instance(mlops_env)

    def ingest(selected: list[str]) -> None:
        for day in selected:
            run = execute(
                definitions, names.ingest_job(UC), dagster_instance, tags=range_tags(day, day)
            )
            if not run.success:
                raise RuntimeError(f"ingest {day}: {run.errors}")

    started = time.monotonic()
    ingest(days[: args.first - 1])
    retrain = execute(
        definitions,
        names.retrain_job(UC),
        dagster_instance,
        run_config=retrain_run_config(spec, args.trials, seed=None),
        # Dated on the day it trained, so it is the champion of every measured day.
        tags={names.AS_OF_TAG: f"{days[args.first - 2]}T23:59:59+00:00"},
    )
    if not retrain.success:
        raise RuntimeError(f"retrain: {retrain.errors}")
    early = run_day_in_fresh_process(days[args.first - 1], env)
    ingest(days[args.first : -1])
    late = run_day_in_fresh_process(days[-1], env)
    ratio = late["seconds"] / early["seconds"]
    result = {
        "benchmark": "daily work (ingest, checks, clean, monitoring) in a fresh run process",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "rows_per_day": args.rows,
        "days_landed": args.days,
        f"day_{args.first}": early,
        f"day_{args.days}": late,
        "ratio_late_to_early": round(ratio, 3),
        "targets": {"ratio_max": 1.3, "seconds_max": 15},
        "meets_targets": ratio <= 1.3 and max(early["seconds"], late["seconds"]) < 15,
        "setup_seconds": round(time.monotonic() - started, 1),
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "daily_cost.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "daily_cost.md").write_text(
        "| day | wall time (s) | peak memory (MB) |\n|---|---|---|\n"
        f"| {args.first} | {early['seconds']:.2f} | {early['peak_rss_mb']:.0f} |\n"
        f"| {args.days} | {late['seconds']:.2f} | {late['peak_rss_mb']:.0f} |\n\n"
        f"Day {args.days} / day {args.first}: {ratio:.2f}x (target <= 1.3x, each < 15 s). "
        f"{args.rows} rows a day; each day run as `dagster job execute` in a fresh process.\n"
    )
    print(json.dumps(result, indent=2))
    return 0 if result["meets_targets"] else 1


if __name__ == "__main__":
    sys.exit(main())
