"""The demo behind ``make demo``: generated BigMart days landed, ingested, tuned and promoted."""

from __future__ import annotations

import datetime as dt
import io

import numpy as np

from mlops_assets import settings
from mlops_assets.specs import load_specs


def land_generated_days(
    use_case: str, days: int, rows: int, seed: int, end: dt.date | None = None
) -> list[str]:
    """Generate ``days`` daily batches ending ``end`` (today) and land them; returns the days."""
    from mlops_assets.generators import get_generator
    from mlops_assets.orchestration import initialized_resource
    from mlops_assets.partitions import today
    from mlops_assets.resources import resources_for_environment

    spec = load_specs()[use_case]
    generator = get_generator(spec.generator or use_case)
    end = end or today()
    landed = []
    with initialized_resource(resources_for_environment(), "landing") as landing:
        for offset in range(days - 1, -1, -1):
            day = end - dt.timedelta(days=offset)
            frame = generator.generate(rows, day, seed)
            buffer = io.StringIO()
            frame.to_csv(buffer, index=False)
            landing.land(use_case, day.isoformat(), "batch.csv", buffer.getvalue().encode())
            landed.append(day.isoformat())
    return landed


def baseline_rmse(use_case: str) -> tuple[float, int]:
    """RMSE of predicting the training mean on the test set, and the test row count."""
    from mlops_assets.features.assets import test_key, train_key
    from mlops_assets.orchestration import initialized_resource
    from mlops_assets.resources import resources_for_environment
    from mlops_assets.storage.tables import read_table, table_key

    spec = load_specs()[use_case]
    with initialized_resource(resources_for_environment(), "lake") as lake:
        store = lake.store()
    train = read_table(store, table_key(train_key(spec).path))
    test = read_table(store, table_key(test_key(spec).path))
    target = spec.target.name
    error = test[target].to_numpy(float) - train[target].mean()
    return float(np.sqrt(np.mean(error**2))), len(test)


def run_demo(days: int = 7, rows: int = 600, n_trials: int | None = None, seed: int = 7) -> int:
    """Land, refresh, report. Returns a process exit code."""
    from mlops_assets.orchestration import refresh
    from mlops_assets.registry.mlflow_resource import MlflowTracking
    from mlops_assets.registry.status import use_case_status

    use_case = "bigmart_sales"
    spec = load_specs()[use_case]
    print(f"MLOPS_HOME={settings.mlops_home()}")
    landed = land_generated_days(use_case, days, rows, seed)
    print(f"landed {len(landed)} generated days of {rows} rows: {landed[0]} .. {landed[-1]}")
    outcome = refresh(spec, n_trials=n_trials, seed=seed, log=print)
    if not outcome.success:
        for run in [*outcome.ingested, *([outcome.retrain] if outcome.retrain else [])]:
            for error in run.errors:
                print(f"FAILED {run.job}: {error}")
        return 1
    status = use_case_status(spec, MlflowTracking())
    champion = status["champion"]
    if champion is None:
        print("no champion in the registry")
        return 1
    rmse = champion["metrics"]["rmse"]
    baseline, test_rows = baseline_rmse(use_case)
    print()
    print(f"champion: {status['model_name']} v{champion['version']} (run {champion['run_id']})")
    print(
        f"test RMSE {rmse:.2f} on {test_rows} rows; predict-the-mean baseline {baseline:.2f} "
        f"({1 - rmse / baseline:.0%} lower)"
    )
    print("see it in the UI: make dev  (then open http://127.0.0.1:3000)")
    return 0
