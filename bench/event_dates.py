"""Cost of a daily extract's ``raw_data`` for an event-date use case as the landed history grows.

A history file of N days of ``m5_sales`` lands and is read once (its run records the file's
date span in the ingestion ledger), then one daily extract for the next day lands. The daily
run's read (``ingest.batches.read_days`` for that one day, what ``raw_data`` does) is timed
twice: with the ingestion ledger (the history file is skipped because its span misses the day)
and without it (an empty ledger: every landed file is read). Measured for N = 365 and N = 1,900
(the length of M5).

Run: ``.venv/bin/python bench/event_dates.py`` (or ``make bench``); writes
``bench/results/event_dates.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from mlops_assets_tests.harness.homes import ISOLATED_VARIABLES

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
UC = "m5_sales"
END = dt.date(2025, 6, 30)


def timed(call, repeat: int) -> tuple[float, object]:
    """Median seconds of ``repeat`` calls, and the last result."""
    seconds, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = call()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), result


def measure(history_days: int, repeat: int) -> dict[str, object]:
    """One fresh home: the history, its first read, then the daily read with and without index."""
    home = Path(tempfile.mkdtemp(prefix=f"mlops-bench-event-{history_days}-"))
    for variable in ISOLATED_VARIABLES:
        os.environ.pop(variable, None)
    os.environ.update({"MLOPS_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")})

    from mlops_assets.environment import Environment
    from mlops_assets.ingest.batches import read_days
    from mlops_assets.ingest.ledger import record_files
    from mlops_assets.ops.demo import land_history
    from mlops_assets.specs import use_case_specs
    from mlops_assets.storage.objectstore import LocalObjectStore

    env = Environment.from_env()
    spec = use_case_specs(env.specs_dirs)[UC]
    first, _ = land_history(env, UC, history_days, seed=1, end=END)
    day = END + dt.timedelta(days=1)
    land_history(env, UC, 1, seed=1, end=day, landed_on=day + dt.timedelta(days=1))
    landing, lake = env.landing_zone(), env.lake()
    empty_ledger = LocalObjectStore(home / "empty")
    history_size = sum(f.size for files in landing.files_by_day(UC).values() for f in files)
    history_run = read_days(landing, lake, spec, [first])  # the history's own run...
    record_files(lake, spec, history_run.entries)  # ...records the files' spans
    days = [day.isoformat()]
    with_index, found = timed(lambda: read_days(landing, lake, spec, days), repeat)
    without_index, everything = timed(lambda: read_days(landing, empty_ledger, spec, days), repeat)
    return {
        "history_days": history_days,
        "landed_bytes": history_size,
        "rows_of_the_day": len(found.rows),
        "files_read_with_index": len(found.files),
        "files_skipped_with_index": found.skipped,
        "files_read_without_index": len(everything.files),
        "seconds_with_index": round(with_index, 4),
        "seconds_without_index": round(without_index, 4),
        "speedup": round(without_index / with_index, 1),
    }


def write_results(rows: list[dict[str, object]]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    machine = {"cpus": os.cpu_count(), "python": platform.python_version()}
    payload = {"machine": machine, "measured_at": dt.datetime.now(dt.UTC).isoformat(), "runs": rows}
    (RESULTS / "event_dates.json").write_text(json.dumps(payload, indent=2) + "\n")
    lines = [
        "# Daily extract of an event-date use case: reading with and without the landing index",
        "",
        f"{machine['cpus']} cores, Python {machine['python']}; median of the repeats. The daily",
        "run reads one new day; without the index it reads every landed file. The generator has",
        "30 series; M5 has 30,490, so its files are about 1,000 times these: without the index",
        "the daily read grows with the whole history, with it only with the day's extract.",
        "",
        "| history days | landed MB | rows of the day | files read (index / none) "
        "| seconds with index | seconds without | speedup |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['history_days']} | {int(row['landed_bytes']) / 1e6:.1f} "
            f"| {row['rows_of_the_day']} "
            f"| {row['files_read_with_index']} / {row['files_read_without_index']} "
            f"| {row['seconds_with_index']} | {row['seconds_without_index']} "
            f"| {row['speedup']}x |"
        )
    (RESULTS / "event_dates.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, nargs="+", default=[365, 1900])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    rows = [measure(days, args.repeat) for days in args.days]
    write_results(rows)
    print((RESULTS / "event_dates.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
