"""``mlops``: land files, refresh, inspect and demo the platform from a terminal.

Every command that changes state launches the code location's own jobs against the instance in
``DAGSTER_HOME`` (default ``<MLOPS_HOME>/dagster``), so the Dagster UI shows what it did. The
environment is resolved once per command (:class:`~mlops_assets.environment.Environment`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from mlops_assets.bentos.build import BentoBuildError
from mlops_assets.components.partitions import partition_bounds
from mlops_assets.environment import Environment, quiet_libraries
from mlops_assets.ingest.batches import landing_problem
from mlops_assets.ingest.days import require_day, today
from mlops_assets.ingest.inputs import dated_as_landed
from mlops_assets.ingest.inputs import describe as describe_input
from mlops_assets.ingest.readers import UnreadableFileError, local_file_bytes, read_landed_file
from mlops_assets.metrics import shown
from mlops_assets.monitoring.alerts import AlertWebhook
from mlops_assets.monitoring.pauses import set_paused
from mlops_assets.ops import (
    demo,
    launch,
    management,
    migrate,
    predict,
    retention,
    serve,
    status,
    toggles,
)
from mlops_assets.registry.ledger import read_ledger
from mlops_assets.specs.catalog import use_case_specs
from mlops_assets.specs.model import UseCaseSpec
from mlops_assets.training.worker import TuneWorkerError, tune_worker


def _env() -> Environment:
    quiet_libraries()
    return Environment.from_env()


def _spec(env: Environment, name: str) -> UseCaseSpec:
    specs = use_case_specs(env.specs_dirs)
    if name not in specs:
        raise SystemExit(f"unknown use case {name!r}; known: {', '.join(sorted(specs))}")
    return specs[name]


def _views(spec: UseCaseSpec, segment: str | None) -> list[UseCaseSpec]:
    """The segment asked for, else every slot (the use case itself when it has no segments)."""
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


def parse_date(text: str) -> str:
    """The ``type`` of every ``--date``: a ``YYYY-MM-DD`` day and nothing else.

    One parser (:func:`~mlops_assets.ingest.days.parse_day`) for the CLI, landing folders and the
    simulate job: ``20261001`` is not a day.
    """
    try:
        return require_day(text).isoformat()
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def cmd_land(args: argparse.Namespace) -> int:
    """Copy a file into a landing day's folder, if its rows would be ingested."""
    env = _env()
    spec = _spec(env, args.use_case)
    source = Path(args.file)
    try:
        data = local_file_bytes(source)
    except UnreadableFileError as error:
        raise SystemExit(str(error)) from None
    day = args.date or today().isoformat()
    frame = None
    if spec.partitions.by == "event_date" and dated_as_landed(spec, source.name):
        try:  # its rows' dates decide its partitions
            frame = read_landed_file(source.name, data)
        except UnreadableFileError as error:
            raise SystemExit(str(error)) from None
        if spec.partitions.date_column not in frame.columns:
            frame = None  # dated by a reference file's join (a calendar), checked at ingestion
    refusal, notes = landing_problem(spec, day, partition_bounds(spec), frame)
    if refusal is not None and not (args.allow_future and day > today().isoformat()):
        hint = (
            "; land it on its day, or pass --allow-future to land it now (it is ingested "
            "once its day comes)"
            if day > today().isoformat()
            else ""
        )
        raise SystemExit(f"not landed: {refusal}{hint}")
    key = env.landing_zone().land(spec.name, day, source.name, data)
    print(f"landed {source} as {key}: {describe_input(spec, key)}")
    if refusal is not None:
        print(f"  waits until {day}: {refusal}", file=sys.stderr)
    for note in notes:
        print(f"  note: {note}", file=sys.stderr)
    return 0


def cmd_refresh(args: argparse.Namespace) -> int:
    """Ingest new landing days, then retrain and apply the promotion gate."""
    env = _env()
    spec = _spec(env, args.use_case)
    segment = _segment_name(spec, args.segment)
    outcome = launch.refresh(
        spec, env, train=not args.no_train, n_trials=args.trials, log=demo.say, segment=segment
    )
    for run in [*outcome.ingested, *([outcome.retrain] if outcome.retrain else [])]:
        for error in run.errors:
            print(f"  {run.job} {run.partition or ''}: {error}", file=sys.stderr)
    for key, why in outcome.unplaced.items():
        print(f"  not ingested: {key}: {why}", file=sys.stderr)
    if not outcome.ingested:
        waiting = f" ({len(outcome.unplaced)} landed files not ingested, above)"
        print(f"{spec.name}: no new landing days{waiting if outcome.unplaced else ''}")
    return 0 if outcome.success else 1


def cmd_status(args: argparse.Namespace) -> int:
    """Champion and challenger with their test metrics (of each segment, or of ``--segment``)."""
    env = _env()
    spec = _spec(env, args.use_case)
    views = _views(spec, args.segment)
    found = status.status(spec, views, env, launch.instance(env))
    slots, bento, retraining = found["slots"], found["bento"], found["retraining"]
    rejected = {
        "rejected_days": found["rejected_days"],
        "rejected_day_count": found["rejected_day_count"],
    }
    if args.json:
        if spec.segments:
            by_segment = {str(v.segment): s for v, s in zip(views, slots, strict=True)}
            document = {
                "use_case": spec.name,
                "segments": by_segment,
                "bento": bento,
                "retraining": retraining,
                **rejected,
            }
        else:
            document = {**slots[0], "bento": bento, "retraining": retraining, **rejected}
        print(json.dumps(document, indent=2, default=str))
        return 0
    for slot in slots:
        segment = f" segment {slot['segment']}" if slot.get("segment") else ""
        print(
            f"{slot['use_case']}{segment} (model {slot['model_name']}, "
            f"tracking {slot['tracking_uri']})"
        )
        for alias in ("champion", "challenger"):
            version = slot[alias]
            if version is None:
                print(f"  {alias}: none")
                continue
            metrics = ", ".join(f"{k}={shown(v)}" for k, v in sorted(version["metrics"].items()))
            print(f"  {alias}: v{version['version']} run {version['run_id']} {metrics}")
        decision = slot.get("last_decision")
        if decision is not None:
            print(f"  last gate decision ({decision['at'][:19]}): {decision['reason']}")
    print(f"  bento: {bento or 'none'}")
    if found["rejected_day_count"]:
        print(f"  rejected days: {found['rejected_day_count']} (kept out of training), latest:")
        for day in found["rejected_days"][-3:]:
            judged = "" if day["current_spec"] else " [judged under an older spec: refresh]"
            print(f"    {day['day']}: {day['reason']}{judged}")
    paused = retraining.pop("paused_segments", [])
    states = ", ".join(f"{name} {state}" for name, state in sorted(retraining.items()))
    print(f"  automatic retraining: {states}")
    if paused:
        print(f"  paused segments: {', '.join(paused)} (the others retrain by themselves)")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the current champions' bento (built first if missing) with ``bentoml serve``."""
    env = _env()
    spec = _spec(env, args.use_case)
    segment = _segment_name(spec, args.segment)
    try:
        tag = serve.champion_bento_for_serving(spec, env, log=print)
    except BentoBuildError as error:
        raise SystemExit(str(error)) from None
    following = "pinned to this version" if args.pin else "following the champion alias"
    only = f", segment {segment} only" if segment else ""
    print(
        f"serving {tag} on http://{args.host}:{args.port} (POST /predict), {following}{only}",
        flush=True,
    )
    serve.exec_serve(env, tag, args.port, args.host, follow=not args.pin, segment=segment)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """Score an unlabeled file with the champion: ids, predictions, model version."""
    env = _env()
    spec = _spec(env, args.use_case)
    if args.segment is not None:
        spec = _one_view(spec, args.segment, "predict")
    try:
        result = predict.predict_file(
            spec, env, Path(args.file), Path(args.output), skip_invalid=args.skip_invalid
        )
    except predict.BatchScoringError as error:
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
    env = _env()
    # A segment's model has its own study (named after ``<use_case>__<segment>``).
    spec = _one_view(_spec(env, args.use_case), args.segment, "tune-worker")
    index = args.index
    if index is None:  # a Kubernetes Indexed Job numbers its pods
        index = int(os.environ.get("JOB_COMPLETION_INDEX") or 0)
    try:
        report = tune_worker(
            spec, env.lake(), env.tracking(), env.optuna_url, args.trials, args.timeout, index
        )
    except TuneWorkerError as error:
        raise SystemExit(str(error)) from None
    best = "n/a" if report.best_value is None else shown(report.best_value)
    print(
        f"added {report.trials_added} trials to {report.study_name}: "
        f"{report.complete_in_study} complete, best {spec.primary_metric} {best}"
    )
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """Every use case with its champion and primary metric."""
    print("\n".join(status.use_case_table(_env())))
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    """Print the promotion ledger: every gate decision, rollback and delete."""
    env = _env()
    spec = _spec(env, args.use_case)
    if args.segment is not None:
        spec = _one_view(spec, args.segment, "history")
    ledger = read_ledger(env.lake(), spec)
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
    table = ledger[columns].astype(object)
    for column in ("challenger_score", "incumbent_score"):
        table[column] = [
            shown(v) if isinstance(v, float) and v == v else "-" for v in table[column]
        ]
    print(table.to_string(index=False, max_colwidth=70))
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    """Move the champion back (default: the champion the current one replaced)."""
    env = _env()
    spec = _one_view(_spec(env, args.use_case), args.segment, "rollback")
    try:
        entry = management.rollback(
            spec, env.tracking(), env.lake(), args.to, alerts=AlertWebhook(env.alert_webhook)
        )
    except management.ManagementError as error:
        print(str(error), file=sys.stderr)
        return 2
    print(f"{spec.registered_model_name()}: {entry.reason}; serving follows the champion alias")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    """Delete a non-champion version and its bento."""
    env = _env()
    spec = _one_view(_spec(env, args.use_case), args.segment, "delete")
    try:
        entry = management.delete_version(
            spec, env.tracking(), env.lake(), serve.bento_store(env), args.version
        )
    except management.ManagementError as error:
        print(str(error), file=sys.stderr)
        return 2
    print(f"{spec.registered_model_name()}: {entry.reason}")
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    """Apply the retention of each use case's spec (or of one): see ``ops/retention.py``."""
    env = _env()
    specs = (
        [_spec(env, args.use_case)]
        if args.use_case
        else list(use_case_specs(env.specs_dirs).values())
    )
    bentos = serve.bento_store(env)
    for spec in specs:
        collection = retention.collect(spec, env, bentos, dry_run=args.dry_run)
        for line in collection.lines():
            print(line)
    return 0


def cmd_toggle(args: argparse.Namespace) -> int:
    """Pause or resume automatic retraining (the retrain sensor and weekly schedule).

    With ``--segment`` only that segment's: the automation keeps running for the others.
    """
    env = _env()
    running = args.command == "resume"
    spec = _spec(env, args.use_case)
    segments = [str(view.segment) for view in _views(spec, args.segment)]
    lines = []
    if args.segment is None:
        try:
            lines = toggles.set_retraining(spec, env, running=running)
        except toggles.ToggleError as error:
            raise SystemExit(str(error)) from None
    if spec.segments and (args.segment is not None or running):  # resume: every segment too
        set_paused(env.lake(), spec, segments, paused=not running)
        state = "retrained automatically" if running else "paused (other segments still retrain)"
        lines += [f"{spec.name} segment {name}: {state}" for name in segments]
    for line in lines:
        print(line)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Bring a home from before the one-shape change up to date (ingestion ledger, ...)."""
    env = _env()
    migrate.migrate(env, launch.instance(env))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The BigMart story: simulated days, drift, retraining by policy, the final champion."""
    return demo.run_demo(
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

    land_parser = sub.add_parser("land", help="copy a file into a landing day")
    land_parser.add_argument("use_case")
    land_parser.add_argument("file")
    land_parser.add_argument("--date", type=parse_date, help="landing day (default: today, UTC)")
    land_parser.add_argument(
        "--allow-future",
        action="store_true",
        help="land on a day after today (ingested once that day comes)",
    )
    land_parser.set_defaults(func=cmd_land)

    refresh_parser = sub.add_parser("refresh", help="ingest new days, retrain, promote")
    refresh_parser.add_argument("use_case")
    refresh_parser.add_argument("--no-train", action="store_true", help="only ingest")
    refresh_parser.add_argument("--trials", type=int, help="Optuna trials (default: the spec's)")
    refresh_parser.add_argument(
        "--segment", help="retrain this segment only (default: every segment)"
    )
    refresh_parser.set_defaults(func=cmd_refresh)

    worker_parser = sub.add_parser(
        "tune-worker", help="add Optuna trials to the current study (scale-out worker)"
    )
    worker_parser.add_argument("use_case")
    worker_parser.add_argument("--trials", type=int, required=True, help="trials this worker runs")
    worker_parser.add_argument("--timeout", type=float, help="stop starting trials after N seconds")
    worker_parser.add_argument(
        "--index", type=int, help="worker number, seeds the sampler (default JOB_COMPLETION_INDEX)"
    )
    worker_parser.add_argument("--segment", help="the segment whose study gets the trials")
    worker_parser.set_defaults(func=cmd_tune_worker)

    status_parser = sub.add_parser("status", help="champion and challenger")
    status_parser.add_argument("use_case")
    status_parser.add_argument("--json", action="store_true")
    status_parser.add_argument(
        "--segment", help="one segment of a segmented use case (default: all)"
    )
    status_parser.set_defaults(func=cmd_status)

    serve_parser = sub.add_parser("serve", help="serve the champion's bento (bentoml serve)")
    serve_parser.add_argument("use_case")
    serve_parser.add_argument(
        "--port",
        type=int,
        default=serve.DEFAULT_PORT,
        help=f"port (default {serve.DEFAULT_PORT}; the Dagster UI of `make dev` is on 3000)",
    )
    serve_parser.add_argument("--host", default="127.0.0.1")
    serve_parser.add_argument(
        "--pin",
        action="store_true",
        help="keep serving this version (default: switch when the champion alias moves)",
    )
    serve_parser.add_argument(
        "--segment", help="answer for this segment only (default: every segment, routed)"
    )
    serve_parser.set_defaults(func=cmd_serve)

    predict_parser = sub.add_parser("predict", help="score an unlabeled file with the champion")
    predict_parser.add_argument("use_case")
    predict_parser.add_argument(
        "file", help="CSV (any common dialect) or Parquet, without the target"
    )
    predict_parser.add_argument("-o", "--output", required=True, help="output .csv or .parquet")
    predict_parser.add_argument(
        "--skip-invalid", action="store_true", help="leave out invalid rows instead of failing"
    )
    predict_parser.add_argument(
        "--segment", help="segment whose champion scores (default: chosen by the file's columns)"
    )
    predict_parser.set_defaults(func=cmd_predict)

    listing_parser = sub.add_parser("list", help="use cases with their champion and primary metric")
    listing_parser.set_defaults(func=cmd_list)

    history_parser = sub.add_parser("history", help="the promotion ledger")
    history_parser.add_argument("use_case")
    history_parser.add_argument("--json", action="store_true")
    history_parser.add_argument("--segment", help="one segment's decisions (default: all)")
    history_parser.set_defaults(func=cmd_history)

    back_parser = sub.add_parser("rollback", help="move the champion back")
    back_parser.add_argument("use_case")
    back_parser.add_argument(
        "--to", help="version to roll back to (default: the previous champion)"
    )
    back_parser.add_argument(
        "--segment", help="the segment whose champion moves (segmented use cases)"
    )
    back_parser.set_defaults(func=cmd_rollback)

    delete_parser = sub.add_parser("delete", help="delete a non-champion version and its bento")
    delete_parser.add_argument("use_case")
    delete_parser.add_argument("--version", required=True)
    delete_parser.add_argument("--segment", help="the segment whose version is deleted")
    delete_parser.set_defaults(func=cmd_delete)

    gc_parser = sub.add_parser(
        "gc", help="remove what the specs' retention no longer keeps (log days, bentos, studies)"
    )
    gc_parser.add_argument("use_case", nargs="?", help="one use case (default: every one)")
    gc_parser.add_argument(
        "--dry-run", action="store_true", help="say what would go, remove nothing"
    )
    gc_parser.set_defaults(func=cmd_gc)

    for name, text in (("pause", "pause automatic retraining"), ("resume", "resume it")):
        toggle_parser = sub.add_parser(name, help=text)
        toggle_parser.add_argument("use_case")
        toggle_parser.add_argument(
            "--segment", help=f"{name} this segment only (the others keep retraining by themselves)"
        )
        toggle_parser.set_defaults(func=cmd_toggle)

    upgrade_parser = sub.add_parser(
        "migrate", help="update an MLOPS_HOME made by an older version (ingestion ledger, bentos)"
    )
    upgrade_parser.set_defaults(func=cmd_migrate)

    demo_parser = sub.add_parser("demo", help="the end-to-end demo on generated data")
    demo_parser.add_argument("--days", type=int, default=30, help="simulated days")
    demo_parser.add_argument("--rows", type=int, default=400, help="rows per day")
    demo_parser.add_argument("--trials", type=int, default=8, help="Optuna trials per retrain")
    demo_parser.add_argument("--seed", type=int, default=7)
    demo_parser.add_argument("--drift-from", type=int, default=20, help="first drifted day")
    demo_parser.add_argument("--reset", action="store_true", help="empty MLOPS_HOME first")
    demo_parser.add_argument(
        "--only-bigmart", action="store_true", help="skip the brief runs of the other use cases"
    )
    demo_parser.set_defaults(func=cmd_demo)
    return parser


def _reap_dead_runs() -> None:
    """Fail the runs a killed process left STARTED (they would block retraining), first."""
    try:
        launch.reap(_env(), log=lambda line: print(f"mlops: {line}", file=sys.stderr))
    except Exception as error:  # noqa: BLE001 - housekeeping must not stop the command itself
        print(f"mlops: could not check for dead runs: {error}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mlops`` console script."""
    args = build_parser().parse_args(argv)
    if args.command != "serve":  # a serving container has no access to the Dagster instance
        _reap_dead_runs()
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
