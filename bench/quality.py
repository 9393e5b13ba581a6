"""Model quality: the platform's champion against what a user fits in a notebook.

For each dataset, files land through ``mlops land`` and become a champion through ``mlops
refresh`` with the spec's real budget (or ``--trials N``); then, on the very rows and split the
platform stored (``train_set`` / ``test_set``), a default CatBoost and a default
HistGradientBoosting are fitted, and all are scored with the spec's primary metric beside the
gate's trivial baseline. A paired bootstrap over the test rows (1,000 replicates, 95%) says
whether the champion is worse than the default CatBoost beyond noise. Times: ingestion and
tuning + gate (wall, the ``mlops`` processes), and each default model's fit.

Datasets:

- generated, non-iid: every bundled use case, its daily batches each drawn from a few groups and
  ordered by group (``layout="grouped"``), the way real extracts come;
- real, when ``--data DIR`` names a folder holding the public files: the M5 CA_1 subset (long,
  sold days only) with the Kaggle calendar through ``m5_sales``; the classic UCI mushroom file
  and the ML-deploy loan file (labels are noise: no champion expected) through use cases of
  their own in
  ``bench/use_cases/``, the way a user would define them. Real files are cut into daily batches
  in file order.

Run: ``.venv/bin/python bench/quality.py [--datasets a,b] [--trials N]`` (or ``make bench``);
writes ``bench/results/quality.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DATA_VARIABLE = "MLOPS_BENCH_DATA"
"""Folder of the real public files (``--data``); unset, only the generated datasets run."""


def data_dir() -> Path | None:
    """Where the real files are, if the user said (``--data`` or ``MLOPS_BENCH_DATA``)."""
    folder = os.environ.get(DATA_VARIABLE)
    return Path(folder).resolve() if folder else None


BENCH_SPECS = ROOT / "bench" / "use_cases"
MLOPS = [sys.executable, "-m", "mlops_assets.cli"]


@dataclass(frozen=True)
class Dataset:
    """One row of the table: a use case and the files that land for it."""

    name: str
    use_case: str
    source: str
    days: int = 30
    rows: int = 300


DATASETS = [
    Dataset("bigmart_sales (generated, grouped days)", "bigmart_sales", "generated", 30, 300),
    Dataset("mushroom (generated, grouped days)", "mushroom", "generated", 30, 300),
    Dataset("obesity (generated, grouped days)", "obesity", "generated", 30, 80),
    Dataset("loan_approval (generated, grouped days)", "loan_approval", "generated", 30, 150),
    Dataset("m5_sales (generated history, 400 days)", "m5_sales", "generated", 400, 0),
    Dataset("m5_sales (real CA_1 subset + calendar)", "m5_sales", "m5_ca1_foods3_long.csv"),
    Dataset("mushroom_classic (real UCI file)", "mushroom_classic", "uci_mushroom_classic.csv"),
    Dataset(
        "ml_deploy_loan (real file, noise labels)", "ml_deploy_loan", "ml_deploy_loan_dataset.csv"
    ),
]


def slug(dataset: Dataset) -> str:
    """A folder name for a dataset."""
    return "".join(c if c.isalnum() else "_" for c in dataset.name).strip("_")[:60]


# ---------------------------------------------------------------- landing


def mlops(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """One ``mlops`` command, as a user runs it."""
    return subprocess.run([*MLOPS, *args], env=env, capture_output=True, text=True, check=False)


def land(use_case: str, path: Path, day: str, env: dict[str, str]) -> None:
    result = mlops(["land", use_case, str(path), "--date", day], env)
    if result.returncode != 0:
        raise RuntimeError(f"mlops land {path.name}: {result.stderr[-2000:]}")


def land_generated(dataset: Dataset, folder: Path, env: dict[str, str]) -> int:
    """Generated batches (grouped, ordered days; a history file for a forecast)."""
    from mlops_assets.generators import get_generator
    from mlops_assets.specs import use_case_specs

    spec = use_case_specs()[dataset.use_case]
    generator: Any = get_generator(spec.generator or spec.name)
    today = dt.date.today()
    if spec.task == "forecast":
        end = dt.date(2016, 4, 24)
        frame = generator.history(end - dt.timedelta(days=dataset.days - 1), end, 5)
        path = folder / "history.csv"
        frame.to_csv(path, index=False)
        land(dataset.use_case, path, today.isoformat(), env)
        return len(frame)
    total = 0
    for number in range(1, dataset.days + 1):
        day = today - dt.timedelta(days=dataset.days - number)
        frame = generator.generate(dataset.rows, day, 5, layout="grouped", stream=number)
        path = folder / f"batch_{day.isoformat()}.csv"
        frame.to_csv(path, index=False)
        land(dataset.use_case, path, day.isoformat(), env)
        total += len(frame)
    return total


def land_real(dataset: Dataset, folder: Path, env: dict[str, str]) -> int:
    """A real file: an event-date history lands whole (with the calendar); others in file order
    as daily batches of a few hundred rows."""
    folder = data_dir()
    assert folder is not None, "real datasets run only with --data"
    source = folder / dataset.source
    today = dt.date.today()
    if dataset.use_case == "m5_sales":
        land(dataset.use_case, folder / "m5_calendar.csv", today.isoformat(), env)
        land(dataset.use_case, source, today.isoformat(), env)
        return sum(1 for _ in source.open()) - 1
    text = source.read_text()
    header, *lines = text.splitlines()
    per_day = 400 if len(lines) > 4000 else 100
    chunks = [lines[i : i + per_day] for i in range(0, len(lines), per_day)]
    for number, chunk in enumerate(chunks):
        day = today - dt.timedelta(days=len(chunks) - 1 - number)
        path = folder / f"part_{number:03d}.csv"
        path.write_text("\n".join([header, *chunk]) + "\n")
        land(dataset.use_case, path, day.isoformat(), env)
    return len(lines)


# ---------------------------------------------------------------- the default models


def _feature_frames(train: Any, test: Any, view: Any, drop: set[str]) -> tuple[Any, Any]:
    """Model input without ids (and without ``drop``) for the training and the test rows.

    The spec's group statistics are learnt on the training rows, as the platform's pipeline
    does (its own ``GroupStat``), so a default model sees every declared feature.
    """
    from mlops_assets.features.pipeline import group_stat_rules, model_input, transformer_classes

    X, T = model_input(train, view), model_input(test, view)  # noqa: N806
    rules = group_stat_rules(view)
    if rules:
        stats = transformer_classes()["GroupStat"](rules).fit(X)
        X, T = stats.transform(X), stats.transform(T)  # noqa: N806
    features = [c for c in view.feature_names if c not in drop]
    return X[features], T[features]


def _categorical(view: Any, columns: list[str]) -> list[str]:
    kinds = {c.name: c.type for c in view.features}
    return [c for c in columns if kinds.get(c) in {"categorical", "date"}]


def _as_predictions(view: Any, model: Any, X: Any) -> tuple[Any, Any]:  # noqa: N803
    """``predict_frame``'s shape: values, or labels with spec-ordered class probabilities."""
    import numpy as np

    from mlops_assets.training.families import clip_to_target

    if not view.is_classification:
        return clip_to_target(np.asarray(model.predict(X), dtype=float), view), None
    proba = model.predict_proba(X)
    fitted = [str(c) for c in model.classes_]
    classes = [str(c) for c in view.target.classes or fitted]
    ordered = np.zeros((len(X), len(classes)))
    for i, name in enumerate(classes):
        if name in fitted:
            ordered[:, i] = proba[:, fitted.index(name)]
    labels = np.asarray(classes, dtype=object)[ordered.argmax(axis=1)]
    return labels, ordered


def default_catboost(view: Any, train: Any, test: Any, drop: set[str]) -> tuple[Any, float]:
    """CatBoost with its library defaults on the same rows (categoricals as text)."""
    from catboost import CatBoostClassifier, CatBoostRegressor

    X, T = _feature_frames(train, test, view, drop)  # noqa: N806
    categorical = _categorical(view, list(X.columns))
    for frame in (X, T):
        for column in categorical:
            frame[column] = frame[column].astype(str).where(frame[column].notna(), "__missing__")
    y = train[view.target.name]
    y = y.astype(str) if view.is_classification else y.astype(float)
    cls = CatBoostClassifier if view.is_classification else CatBoostRegressor
    model = cls(
        verbose=0,
        random_seed=0,
        thread_count=os.cpu_count(),
        cat_features=categorical,
        allow_writing_files=False,  # no catboost_info/ in the working folder; no effect on the fit
    )
    started = time.perf_counter()
    model.fit(X, y)
    seconds = time.perf_counter() - started
    return _as_predictions(view, model, T), seconds


def default_hgb(view: Any, train: Any, test: Any) -> tuple[Any, float]:
    """HistGradientBoosting with its library defaults; categoricals as pandas categories (codes
    when a column has more values than it accepts)."""
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    X, T = _feature_frames(train, test, view, set())  # noqa: N806
    for column in _categorical(view, list(X.columns)):
        known = pd.Index(X[column].dropna().astype(str).unique())
        for frame in (X, T):
            values = frame[column].astype(str).where(frame[column].notna())
            frame[column] = pd.Categorical(values, categories=known)
            if len(known) > 250:
                frame[column] = frame[column].cat.codes.replace(-1, float("nan"))
    y = train[view.target.name]
    y = y.astype(str) if view.is_classification else y.astype(float)
    cls = (
        HistGradientBoostingClassifier if view.is_classification else HistGradientBoostingRegressor
    )
    model = cls(categorical_features="from_dtype", random_state=0)
    started = time.perf_counter()
    model.fit(X, y)
    seconds = time.perf_counter() - started
    return _as_predictions(view, model, T), seconds


# ---------------------------------------------------------------- one dataset


def champion_of(tracking: Any, view: Any, alias: str | None = None) -> tuple[Any, str, str] | None:
    """The slot's champion (or ``alias``) pipeline, version and family, or ``None``."""
    from mlops_assets.names import CHAMPION

    try:
        version = tracking.alias_version(view.registered_model_name(), alias or CHAMPION)
    except Exception:  # no registered model at all
        return None
    if version is None:  # no champion: the gate kept every challenger out
        return None
    pipeline = tracking.load_pipeline(view.registered_model_name(), str(version.version))
    family = type(pipeline.named_steps["model"]).__name__
    return pipeline, str(version.version), family


def gate_of_challenger(view: Any, train: Any, test: Any, tracking: Any) -> dict[str, Any]:
    """Why no champion: the gate's own floor (:func:`baseline_floor`) for the challenger."""
    from mlops_assets.components.registry import baseline_floor
    from mlops_assets.features.pipeline import model_input
    from mlops_assets.metrics import improvement
    from mlops_assets.names import CHALLENGER
    from mlops_assets.training.families import predict_frame

    found = champion_of(tracking, view, CHALLENGER)
    if found is None:
        return {}
    pipeline, version, family = found
    floor = baseline_floor(view, pipeline, train, test)
    score = floor.scores[view.primary_metric]
    worse = {}
    if view.task == "forecast":
        predicted = predict_frame(pipeline, model_input(test, view), view)
        worse = worse_series(view, test[view.target.name], predicted, test)
    return {
        **worse,
        "challenger": round(score, 4),
        "challenger_version": version,
        "challenger_family": family,
        "challenger_vs_baseline": round(
            improvement(view.primary_metric, score, floor.baseline_score), 4
        ),
        "challenger_vs_baseline_low": round(floor.interval[0], 4),
        "challenger_vs_baseline_high": round(floor.interval[1], 4),
        "gate_level": floor.level,
        "gate_resampled": floor.resampled,
    }


def worse_series(view: Any, y: Any, predicted: Any, test: Any) -> dict[str, Any]:
    """A forecast's series on which the challenger is worse than the seasonal-naive forecast."""
    import numpy as np

    from mlops_assets.features.forecast import rmsse_inputs
    from mlops_assets.metrics import rmsse

    inputs = rmsse_inputs(test, view)
    groups = inputs["groups"] if inputs["groups"] is not None else np.zeros(len(test))
    truth, values = y.to_numpy(float), np.asarray(predicted[0], float)
    ratios = {}
    for key in np.unique(groups):
        rows = groups == key
        try:
            ratios[str(key)] = rmsse(truth[rows], values[rows], inputs["y_naive"][rows])
        except ValueError:  # a perfect naive forecast: no ratio
            continue
    worse = {key: round(value, 3) for key, value in ratios.items() if value > 1}
    return {"series": len(ratios), "series_worse_than_baseline": worse}


def evaluate_slot(view: Any, train: Any, test: Any, tracking: Any) -> dict[str, Any]:
    """Every model's primary metric on the test rows, the bootstrap and the fit times."""
    from mlops_assets.features.derived import model_spec
    from mlops_assets.features.pipeline import model_input
    from mlops_assets.training.baseline import baseline_predictions
    from mlops_assets.training.evaluation import bootstrap_improvement, score_predictions
    from mlops_assets.training.families import predict_frame

    view = model_spec(view)
    metric = view.primary_metric
    y = test[view.target.name]

    def score(predictions: tuple[Any, Any]) -> float:
        return round(score_predictions(view, y, *predictions, test)[metric], 4)

    catboost, catboost_s = default_catboost(view, train, test, set())
    hgb, hgb_s = default_hgb(view, train, test)
    baseline = baseline_predictions(view, train, test)
    row: dict[str, Any] = {
        "slot": view.segment or view.name,
        "metric": metric,
        "train_rows": len(train),
        "test_rows": len(test),
        "default_catboost": score(catboost),
        "default_hgb": score(hgb),
        "baseline": score(baseline),
        "catboost_fit_s": round(catboost_s, 1),
        "hgb_fit_s": round(hgb_s, 1),
    }
    declared = {d.name for d in view.derived}
    if declared:  # the gain of the spec's derived features, on the default CatBoost alone
        plain, _ = default_catboost(view, train, test, declared)
        row["default_catboost_without_derived"] = score(plain)
    found = champion_of(tracking, view)
    if found is None:
        row.update(champion=None, champion_version=None, verdict="no champion (gate)")
        row.update(gate_of_challenger(view, train, test, tracking))
        return row
    pipeline, version, family = found
    champion = predict_frame(pipeline, model_input(test, view), view)
    versus = bootstrap_improvement(view, y, champion, catboost, rows=test, level=0.95)
    row.update(
        champion=score(champion),
        champion_version=version,
        champion_family=family,
        vs_catboost=round(versus.improvement, 4),
        vs_catboost_low=round(versus.low, 4),
        vs_catboost_high=round(versus.high, 4),
        verdict="worse than default CatBoost"
        if versus.high < 0
        else ("better than default CatBoost" if versus.low > 0 else "same as default CatBoost"),
    )
    return row


def run_one(dataset: Dataset, trials: int | None) -> dict[str, Any]:
    """Land, refresh and evaluate one dataset in this process's environment."""
    home = Path(os.environ["MLOPS_HOME"])
    folder = home.parent / "files"
    folder.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    started = time.monotonic()
    rows = (
        land_generated(dataset, folder, env)
        if dataset.source == "generated"
        else land_real(dataset, folder, env)
    )
    landed_s = time.monotonic() - started
    started = time.monotonic()
    ingest = mlops(["refresh", dataset.use_case, "--no-train"], env)
    ingest_s = time.monotonic() - started
    budget = ["--trials", str(trials)] if trials else []
    started = time.monotonic()
    train = mlops(["refresh", dataset.use_case, *budget], env)
    train_s = time.monotonic() - started
    if ingest.returncode != 0 or train.returncode != 0:
        raise RuntimeError(f"refresh failed:\n{ingest.stderr[-3000:]}\n{train.stderr[-3000:]}")

    from mlops_assets import names
    from mlops_assets.environment import Environment
    from mlops_assets.features.derived import model_spec
    from mlops_assets.specs import use_case_specs
    from mlops_assets.storage.tables import read_table, table_key

    mlops_env = Environment.from_env()
    spec = use_case_specs(mlops_env.specs_dirs)[dataset.use_case]
    lake, tracking = mlops_env.lake(), mlops_env.tracking()
    train_rows = read_table(lake, table_key(names.asset_path(spec.name, names.TRAIN_SET)))
    test_rows = read_table(lake, table_key(names.asset_path(spec.name, names.TEST_SET)))
    slots = [
        evaluate_slot(view, train_rows, test_rows, tracking)
        for view in model_spec(spec).segment_specs()
    ]
    return {
        "dataset": dataset.name,
        "use_case": dataset.use_case,
        "source": dataset.source,
        "rows_landed": rows,
        "land_s": round(landed_s, 1),
        "ingest_s": round(ingest_s, 1),
        "tune_and_gate_s": round(train_s, 1),
        "budget": f"--trials {trials}" if trials else "the spec's (40 trials, 600 s)",
        "slots": slots,
    }


def isolated_env(home: Path) -> dict[str, str]:
    from mlops_assets_tests.harness.homes import ISOLATED_VARIABLES

    env = {k: v for k, v in os.environ.items() if k not in ISOLATED_VARIABLES}
    env.update(
        MLOPS_HOME=str(home),
        DAGSTER_HOME=str(home / "dagster"),
        BENTOML_HOME=str(home / "bentoml"),
        MLOPS_SPECS_DIRS=str(BENCH_SPECS),
        PYTHONPATH=str(ROOT),
    )
    return env


# ---------------------------------------------------------------- the table


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| dataset | slot | metric | champion | default CatBoost | CatBoost without derived "
        "| default HGB | baseline | champion vs CatBoost (95% CI) | verdict | ingest s "
        "| tune + gate s | CatBoost fit s | HGB fit s |",
        "|---|---|---|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---:|",
    ]
    for result in results:
        if "error" in result:
            last = result["error"].strip().splitlines()[-1] if result["error"].strip() else ""
            lines.append(f"| {result['dataset']} | failed: {last[:160].replace('|', '/')} |")
            continue
        for slot in result["slots"]:
            champion = "none" if slot["champion"] is None else slot["champion"]
            interval = (
                f"{slot['vs_catboost']:+.2%} [{slot['vs_catboost_low']:+.2%}, "
                f"{slot['vs_catboost_high']:+.2%}]"
                if slot.get("vs_catboost") is not None
                else ""
            )
            verdict = slot["verdict"]
            if slot.get("challenger") is not None:  # why the gate said no
                verdict += (
                    f": challenger v{slot['challenger_version']} {slot['challenger']}, "
                    f"{slot['challenger_vs_baseline']:+.2%} on the baseline, "
                    f"{slot['gate_level']:.0%} interval "
                    f"[{slot['challenger_vs_baseline_low']:+.2%}, "
                    f"{slot['challenger_vs_baseline_high']:+.2%}] over {slot['gate_resampled']}"
                )
                worse = slot.get("series_worse_than_baseline")
                if worse is not None:
                    named = ", ".join(f"{key} {value}" for key, value in worse.items())
                    verdict += f"; worse than the baseline on {len(worse)} of {slot['series']}"
                    verdict += f" series ({named})" if worse else " series"
            lines.append(
                f"| {result['dataset']} | {slot['slot']} | {slot['metric']} | {champion} "
                f"| {slot['default_catboost']} "
                f"| {slot.get('default_catboost_without_derived', '')} "
                f"| {slot['default_hgb']} | {slot['baseline']} | {interval} | {verdict} "
                f"| {result['ingest_s']} | {result['tune_and_gate_s']} "
                f"| {slot['catboost_fit_s']} | {slot['hgb_fit_s']} |"
            )
    return "\n".join(lines)


def write_markdown(payload: dict[str, Any]) -> None:
    """``quality.md``: the table, and the command of each dataset's row."""
    commands = sorted({r.get("command", payload["command"]) for r in payload["results"]})
    ran = "; ".join(f"`{c}`" for c in commands)
    (RESULTS / "quality.md").write_text(
        f"# Model quality ({ran}; last run {payload['at']})\n\n{table(payload['results'])}\n"
    )


def kept_results(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """This run's results, after the earlier run's of datasets not run again (in table order).

    So one dataset can be run again on its own (``--datasets``) without losing the others.
    """
    path = RESULTS / "quality.json"
    earlier = json.loads(path.read_text())["results"] if path.is_file() else []
    fresh = {r["dataset"] for r in results}
    merged = {r["dataset"]: r for r in earlier if r["dataset"] not in fresh}
    merged.update({r["dataset"]: r for r in results})
    order = [d.name for d in DATASETS]
    return sorted(
        merged.values(),
        key=lambda r: order.index(r["dataset"]) if r["dataset"] in order else len(order),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", help="comma-separated use case names (default: all)")
    parser.add_argument("--trials", type=int, help="trial budget instead of the spec's")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a dataset, in a child process
    parser.add_argument("--render", action="store_true", help="rewrite quality.md from .json")
    parser.add_argument(
        "--data", help=f"folder of the real files (default ${DATA_VARIABLE}; none: generated only)"
    )
    args = parser.parse_args(argv)
    if args.data:
        os.environ[DATA_VARIABLE] = str(Path(args.data).resolve())  # the children read it too
    if args.render:
        payload = json.loads((RESULTS / "quality.json").read_text())
        write_markdown(payload)
        return 0
    if args.one is not None:
        dataset = next(d for d in DATASETS if slug(d) == args.one)
        print(json.dumps(run_one(dataset, args.trials)))
        return 0

    wanted = set(args.datasets.split(",")) if args.datasets else None
    folder = data_dir()
    chosen = [
        d
        for d in DATASETS
        if (wanted is None or d.use_case in wanted)
        and (d.source == "generated" or (folder is not None and (folder / d.source).is_file()))
    ]
    workdir = Path(tempfile.mkdtemp(prefix="mlops-bench-quality-"))
    results = []
    for dataset in chosen:
        print(f"-- {dataset.name}", flush=True)
        home = workdir / slug(dataset) / "mlops"
        home.mkdir(parents=True)
        command = [sys.executable, __file__, "--one", slug(dataset)]
        command += ["--trials", str(args.trials)] if args.trials else []
        done = subprocess.run(command, env=isolated_env(home), capture_output=True, text=True)
        if done.returncode != 0:
            results.append({"dataset": dataset.name, "error": done.stderr.strip()[-400:]})
            print(done.stderr[-3000:], file=sys.stderr)
            continue
        result = json.loads(done.stdout.strip().splitlines()[-1])
        result["command"] = " ".join(["bench/quality.py", *(argv or sys.argv[1:])])
        results.append(result)
        print(json.dumps(result["slots"]), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    results = kept_results(results)
    payload = {
        "benchmark": "champion vs default CatBoost / HGB / baseline on the platform's own split",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["bench/quality.py", *(argv if argv is not None else sys.argv[1:])]),
        "results": results,
    }
    (RESULTS / "quality.json").write_text(json.dumps(payload, indent=2) + "\n")
    write_markdown(payload)
    print(table(results))
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
