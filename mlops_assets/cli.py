"""``mlops``: land files, refresh, inspect and demo the platform from a terminal.

Every command that changes state launches the code location's own jobs against the instance in
``DAGSTER_HOME`` (default ``<MLOPS_HOME>/dagster``), so the Dagster UI shows what it did.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Any

from mlops_assets.specs import UseCaseSpec, load_specs


def _spec(name: str) -> UseCaseSpec:
    specs = load_specs()
    if name not in specs:
        raise SystemExit(f"unknown use case {name!r}; known: {', '.join(sorted(specs))}")
    return specs[name]


def _views(spec: UseCaseSpec, segment: str | None) -> list[UseCaseSpec]:
    """The segment asked for, else every segment (the use case itself when it has none)."""
    if segment is None:
        return spec.segment_specs()
    if not spec.segments:
        raise SystemExit(f"{spec.name} has no segments; leave out --segment")
    if segment not in spec.segment_names:
        raise SystemExit(
            f"{spec.name} has no segment {segment!r}; segments: {', '.join(spec.segment_names)}"
        )
    return [spec.segment_spec(segment)]


def _segment_name(spec: UseCaseSpec, segment: str | None) -> str | None:
    """``--segment`` checked against the use case (an error lists its segments); ``None``: all."""
    return _views(spec, segment)[0].segment if segment is not None else None


def _one_view(spec: UseCaseSpec, segment: str | None, command: str) -> UseCaseSpec:
    """The one model a command acts on: a segmented use case needs ``--segment``."""
    if spec.segments and segment is None:
        raise SystemExit(
            f"{spec.name} has one model per segment; `mlops {command}` needs --segment "
            f"(one of: {', '.join(spec.segment_names)})"
        )
    return _views(spec, segment)[0]


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
    segment = _segment_name(spec, args.segment)
    outcome = refresh(
        spec, train=not args.no_train, n_trials=args.trials, log=print, segment=segment
    )
    for run in [*outcome.ingested, *([outcome.retrain] if outcome.retrain else [])]:
        for error in run.errors:
            print(f"  {run.job} {run.partition or ''}: {error}", file=sys.stderr)
    if not outcome.ingested and not args.no_train:
        print(f"{spec.name}: no new landing days")
    return 0 if outcome.success else 1


def cmd_status(args: argparse.Namespace) -> int:
    """Champion and challenger with their test metrics (of each segment, or of ``--segment``)."""
    from mlops_assets.monitoring.toggles import retraining_summary
    from mlops_assets.orchestration import instance
    from mlops_assets.registry.status import use_case_status

    spec = _spec(args.use_case)
    views = _views(spec, args.segment)
    statuses = [use_case_status(view, _mlflow()) for view in views]
    bento = _bento_tag(spec, statuses)
    retraining = retraining_summary(spec, instance())
    if args.json:
        if spec.segments:
            found = {str(v.segment): s for v, s in zip(views, statuses, strict=True)}
            print(
                json.dumps(
                    {
                        "use_case": spec.name,
                        "segments": found,
                        "bento": bento,
                        "retraining": retraining,
                    },
                    indent=2,
                    default=str,
                )
            )
        else:
            summary = {**statuses[0], "bento": bento, "retraining": retraining}
            print(json.dumps(summary, indent=2, default=str))
        return 0
    for status in statuses:
        segment = f" segment {status['segment']}" if status.get("segment") else ""
        print(
            f"{status['use_case']}{segment} (model {status['model_name']}, "
            f"tracking {status['tracking_uri']})"
        )
        for alias in ("champion", "challenger"):
            version = status[alias]
            if version is None:
                print(f"  {alias}: none")
                continue
            metrics = ", ".join(f"{k}={v:.4g}" for k, v in sorted(version["metrics"].items()))
            print(f"  {alias}: v{version['version']} run {version['run_id']} {metrics}")
    print(f"  bento: {bento or 'none'}")
    paused = retraining.pop("paused_segments", [])
    states = ", ".join(f"{name} {state}" for name, state in sorted(retraining.items()))
    print(f"  automatic retraining: {states}")
    if paused:
        print(f"  paused segments: {', '.join(paused)} (the others retrain by themselves)")
    return 0


def _bento_tag(spec: UseCaseSpec, statuses: list[dict[str, Any]]) -> str | None:
    """The champion's bento tag, when it was built (``None`` without a champion)."""
    if any(status.get("champion") is None for status in statuses):
        return None
    from mlops_assets.serving.bento import current_bento_tag

    return current_bento_tag(spec, _mlflow())


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the current champion's bento (built first if missing) with ``bentoml serve``."""
    from mlops_assets.serving.bento import BentoBuildError
    from mlops_assets.serving.serve import champion_bento_for_serving, exec_serve

    spec = _spec(args.use_case)
    segment = _segment_name(spec, args.segment)
    try:
        tag = champion_bento_for_serving(spec, _mlflow(), log=print)
    except BentoBuildError as error:
        raise SystemExit(str(error)) from None
    following = "pinned to this version" if args.pin else "following the champion alias"
    only = f", segment {segment} only" if segment else ""
    print(
        f"serving {tag} on http://{args.host}:{args.port} (POST /predict), {following}{only}",
        flush=True,
    )
    exec_serve(tag, args.port, args.host, follow=not args.pin, segment=segment)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """Score an unlabeled file with the champion: ids, predictions, model version."""
    from mlops_assets.serving.batch import BatchScoringError, predict_file

    spec = _spec(args.use_case)
    if args.segment is not None:
        spec = _one_view(spec, args.segment, "predict")
    try:
        result = predict_file(
            spec, _mlflow(), Path(args.file), Path(args.output), skip_invalid=args.skip_invalid
        )
    except BatchScoringError as error:
        print(str(error), file=sys.stderr)
        return 2
    print(
        f"scored {result.rows_scored} of {result.rows_in} rows with {result.model_name} "
        f"v{result.model_version} -> {result.output}"
    )
    for problem in result.problems[:20]:
        print(f"  skipped: {problem}", file=sys.stderr)
    return 0


def cmd_tune_worker(args: argparse.Namespace) -> int:
    """Add trials to the use case's current Optuna study (a pod of the Kubernetes worker Job)."""
    from mlops_assets import settings
    from mlops_assets.training.worker import TuneWorkerError, tune_worker

    # A segment's model has its own study (named after ``<use_case>__<segment>``).
    spec = _one_view(_spec(args.use_case), args.segment, "tune-worker")
    index = args.index
    if index is None:  # a Kubernetes Indexed Job numbers its pods
        index = int(os.environ.get("JOB_COMPLETION_INDEX") or 0)
    try:
        report = tune_worker(
            spec,
            _lake_store(),
            _mlflow(),
            settings.optuna_storage_uri(),
            args.trials,
            args.timeout,
            index,
        )
    except TuneWorkerError as error:
        raise SystemExit(str(error)) from None
    best = "n/a" if report.best_value is None else f"{report.best_value:.4f}"
    print(
        f"added {report.trials_added} trials to {report.study_name}: "
        f"{report.complete_in_study} complete, best {spec.primary_metric} {best}"
    )
    return 0


def _lake_store() -> Any:
    from mlops_assets.orchestration import initialized_resource
    from mlops_assets.resources import resources_for_environment

    with initialized_resource(resources_for_environment(), "lake") as lake:
        return lake.store()


def cmd_list(args: argparse.Namespace) -> int:
    """Every use case with its champion and primary metric."""
    from mlops_assets.registry.status import use_case_table

    print("\n".join(use_case_table()))
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    """Print the promotion ledger: every gate decision, rollback and delete."""
    from mlops_assets.registry.ledger import read_ledger

    spec = _spec(args.use_case)
    if args.segment is not None:
        spec = _one_view(spec, args.segment, "history")
    ledger = read_ledger(_lake_store(), spec)
    if args.json:
        print(ledger.to_json(orient="records", indent=2))
        return 0
    if ledger.empty:
        print(f"{spec.name}: no decisions yet")
        return 0
    columns = [
        "at",
        *(["segment"] if spec.segments or spec.segment else []),
        "action",
        "champion_version",
        "challenger_version",
        "incumbent_version",
        "challenger_score",
        "incumbent_score",
        "trigger",
        "reason",
    ]
    print(ledger[columns].to_string(index=False, max_colwidth=70))
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    """Move the champion back (default: the champion the current one replaced)."""
    from mlops_assets.registry.management import ManagementError, rollback

    spec = _one_view(_spec(args.use_case), args.segment, "rollback")
    try:
        entry = rollback(spec, _mlflow(), _lake_store(), args.to)
    except ManagementError as error:
        print(str(error), file=sys.stderr)
        return 2
    print(f"{spec.registered_model_name()}: {entry.reason}; serving follows the champion alias")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    """Delete a non-champion version and its bento."""
    from mlops_assets.registry.management import ManagementError, delete_version

    spec = _one_view(_spec(args.use_case), args.segment, "delete")
    try:
        entry = delete_version(spec, _mlflow(), _lake_store(), args.version)
    except ManagementError as error:
        print(str(error), file=sys.stderr)
        return 2
    print(f"{spec.registered_model_name()}: {entry.reason}")
    return 0


def cmd_toggle(args: argparse.Namespace) -> int:
    """Pause or resume automatic retraining (the retrain sensor and weekly schedule).

    With ``--segment`` only that segment's: the automation keeps running for the others.
    """
    from mlops_assets.monitoring.toggles import set_retraining, set_segment_retraining
    from mlops_assets.orchestration import instance

    running = args.command == "resume"
    spec = _spec(args.use_case)
    segments = [str(view.segment) for view in _views(spec, args.segment)]
    lines = []
    if args.segment is None:
        lines = set_retraining(spec, running=running)
    if spec.segments and (args.segment is not None or running):  # resume: every segment too
        changed = set_segment_retraining(spec, segments, running, instance())
        lines += [f"{spec.name} {line}" for line in changed]
    for line in lines:
        print(line)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The BigMart story: simulated days, drift, retraining by policy, the final champion."""
    from mlops_assets.demo import run_demo

    return run_demo(
        days=args.days,
        rows=args.rows,
        n_trials=args.trials,
        seed=args.seed,
        drift_from=args.drift_from,
        reset=args.reset,
        others=not args.only_bigmart,
    )


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
    refresh.add_argument("--segment", help="retrain this segment only (default: every segment)")
    refresh.set_defaults(func=cmd_refresh)

    worker = sub.add_parser(
        "tune-worker", help="add Optuna trials to the current study (scale-out worker)"
    )
    worker.add_argument("use_case")
    worker.add_argument("--trials", type=int, required=True, help="trials this worker runs")
    worker.add_argument("--timeout", type=float, help="stop starting trials after N seconds")
    worker.add_argument(
        "--index", type=int, help="worker number, seeds the sampler (default JOB_COMPLETION_INDEX)"
    )
    worker.add_argument("--segment", help="the segment whose study gets the trials")
    worker.set_defaults(func=cmd_tune_worker)

    status = sub.add_parser("status", help="champion and challenger")
    status.add_argument("use_case")
    status.add_argument("--json", action="store_true")
    status.add_argument("--segment", help="one segment of a segmented use case (default: all)")
    status.set_defaults(func=cmd_status)

    serve = sub.add_parser("serve", help="serve the champion's bento (bentoml serve)")
    serve.add_argument("use_case")
    serve.add_argument("--port", type=int, default=3000)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument(
        "--pin",
        action="store_true",
        help="keep serving this version (default: switch when the champion alias moves)",
    )
    serve.add_argument(
        "--segment", help="answer for this segment only (default: every segment, routed)"
    )
    serve.set_defaults(func=cmd_serve)

    predict = sub.add_parser("predict", help="score an unlabeled file with the champion")
    predict.add_argument("use_case")
    predict.add_argument("file", help="CSV (any common dialect) or Parquet, without the target")
    predict.add_argument("-o", "--output", required=True, help="output .csv or .parquet")
    predict.add_argument(
        "--skip-invalid", action="store_true", help="leave out invalid rows instead of failing"
    )
    predict.add_argument(
        "--segment", help="segment whose champion scores (default: chosen by the file's columns)"
    )
    predict.set_defaults(func=cmd_predict)

    listing = sub.add_parser("list", help="use cases with their champion and primary metric")
    listing.set_defaults(func=cmd_list)

    history = sub.add_parser("history", help="the promotion ledger")
    history.add_argument("use_case")
    history.add_argument("--json", action="store_true")
    history.add_argument("--segment", help="one segment's decisions (default: all)")
    history.set_defaults(func=cmd_history)

    back = sub.add_parser("rollback", help="move the champion back")
    back.add_argument("use_case")
    back.add_argument("--to", help="version to roll back to (default: the previous champion)")
    back.add_argument("--segment", help="the segment whose champion moves (segmented use cases)")
    back.set_defaults(func=cmd_rollback)

    delete = sub.add_parser("delete", help="delete a non-champion version and its bento")
    delete.add_argument("use_case")
    delete.add_argument("--version", required=True)
    delete.add_argument("--segment", help="the segment whose version is deleted")
    delete.set_defaults(func=cmd_delete)

    for name, text in (("pause", "pause automatic retraining"), ("resume", "resume it")):
        toggle = sub.add_parser(name, help=text)
        toggle.add_argument("use_case")
        toggle.add_argument(
            "--segment", help=f"{name} this segment only (the others keep retraining by themselves)"
        )
        toggle.set_defaults(func=cmd_toggle)

    demo = sub.add_parser("demo", help="the end-to-end demo on generated data")
    demo.add_argument("--days", type=int, default=30, help="simulated days")
    demo.add_argument("--rows", type=int, default=400, help="rows per day")
    demo.add_argument("--trials", type=int, default=8, help="Optuna trials per retrain")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--drift-from", type=int, default=20, help="first drifted day")
    demo.add_argument("--reset", action="store_true", help="empty MLOPS_HOME first")
    demo.add_argument(
        "--only-bigmart", action="store_true", help="skip the brief runs of the other use cases"
    )
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mlops`` console script."""
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
