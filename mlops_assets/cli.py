"""``mlops``: land files, refresh, inspect and demo the platform from a terminal.

Every command that changes state launches the code location's own jobs against the instance in
``DAGSTER_HOME`` (default ``<MLOPS_HOME>/dagster``), so the Dagster UI shows what it did.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from mlops_assets.specs import UseCaseSpec, load_specs


def _spec(name: str) -> UseCaseSpec:
    specs = load_specs()
    if name not in specs:
        raise SystemExit(f"unknown use case {name!r}; known: {', '.join(sorted(specs))}")
    return specs[name]


def _date(text: str) -> str:
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {text!r}") from None


def _land_bytes(use_case: str, day: str, name: str, data: bytes) -> str:
    from mlops_assets.orchestration import initialized_resource
    from mlops_assets.resources import resources_for_environment

    with initialized_resource(resources_for_environment(), "landing") as landing:
        return landing.land(use_case, day, name, data)


def _mlflow() -> Any:
    from mlops_assets.registry.mlflow_resource import MlflowTracking

    return MlflowTracking()


def cmd_land(args: argparse.Namespace) -> int:
    """Copy a file into a landing day's folder."""
    from mlops_assets.partitions import today

    spec = _spec(args.use_case)
    source = Path(args.file)
    if not source.is_file():
        raise SystemExit(f"no such file: {source}")
    day = args.date or today().isoformat()
    key = _land_bytes(spec.name, day, source.name, source.read_bytes())
    print(f"landed {source} as {key}")
    return 0


def cmd_refresh(args: argparse.Namespace) -> int:
    """Ingest new landing days, then retrain and apply the promotion gate."""
    from mlops_assets.orchestration import refresh

    spec = _spec(args.use_case)
    outcome = refresh(spec, train=not args.no_train, n_trials=args.trials, log=print)
    for run in [*outcome.ingested, *([outcome.retrain] if outcome.retrain else [])]:
        for error in run.errors:
            print(f"  {run.job} {run.partition or ''}: {error}", file=sys.stderr)
    if not outcome.ingested and not args.no_train:
        print(f"{spec.name}: no new landing days")
    return 0 if outcome.success else 1


def cmd_status(args: argparse.Namespace) -> int:
    """Champion and challenger with their test metrics."""
    from mlops_assets.registry.status import use_case_status

    status = use_case_status(_spec(args.use_case), _mlflow())
    if args.json:
        print(json.dumps(status, indent=2, default=str))
        return 0
    print(f"{status['use_case']} (model {status['model_name']}, tracking {status['tracking_uri']})")
    for alias in ("champion", "challenger"):
        version = status[alias]
        if version is None:
            print(f"  {alias}: none")
            continue
        metrics = ", ".join(f"{k}={v:.4g}" for k, v in sorted(version["metrics"].items()))
        print(f"  {alias}: v{version['version']} run {version['run_id']} {metrics}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Land generated days for BigMart, refresh, and print the champion against a baseline."""
    from mlops_assets.demo import run_demo

    return run_demo(days=args.days, rows=args.rows, n_trials=args.trials, seed=args.seed)


def build_parser() -> argparse.ArgumentParser:
    """The ``mlops`` argument parser."""
    parser = argparse.ArgumentParser(prog="mlops", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    land = sub.add_parser("land", help="copy a file into a landing day")
    land.add_argument("use_case")
    land.add_argument("file")
    land.add_argument("--date", type=_date, help="landing day (default: today, UTC)")
    land.set_defaults(func=cmd_land)

    refresh = sub.add_parser("refresh", help="ingest new days, retrain, promote")
    refresh.add_argument("use_case")
    refresh.add_argument("--no-train", action="store_true", help="only ingest")
    refresh.add_argument("--trials", type=int, help="Optuna trials (default: the spec's)")
    refresh.set_defaults(func=cmd_refresh)

    status = sub.add_parser("status", help="champion and challenger")
    status.add_argument("use_case")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)

    demo = sub.add_parser("demo", help="the end-to-end demo on generated data")
    demo.add_argument("--days", type=int, default=7)
    demo.add_argument("--rows", type=int, default=600, help="rows per day")
    demo.add_argument("--trials", type=int, default=None)
    demo.add_argument("--seed", type=int, default=7)
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mlops`` console script."""
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
