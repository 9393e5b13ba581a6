"""The forecast use case end to end, in-process: a landed history file to a promoted champion.

One generated history file (3 stores x 10 items, about three months, zero-sales rows partly
missing) lands in a fresh ``MLOPS_HOME``; ``refresh`` ingests it as one run over its event dates,
then splits by time (the last 28 days are the test set), tunes, gates and builds the bento. The
champion must beat the seasonal-naive forecast (RMSSE below 1), report every metric of the spec,
reproduce its recorded test score, and forecast next week from series, dates and covariates
alone (``mlops predict``: lags come from the stored history).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from mlops_assets.specs import load_specs

END = dt.date(2025, 6, 30)
DAYS, SEED = 100, 5


def test_m5_sales_materializes_end_to_end(mlops_home: Path) -> None:
    from mlops_assets.demo import land_history
    from mlops_assets.features.forecast import derived_features, model_spec
    from mlops_assets.orchestration import load_definitions, refresh
    from mlops_assets.registry.mlflow_resource import CHAMPION, MlflowTracking
    from mlops_assets.registry.status import use_case_status
    from mlops_assets.training.evaluation import evaluate, spec_metrics

    spec = load_specs()["m5_sales"]
    first, last = land_history("m5_sales", days=DAYS, seed=SEED, end=END)
    instance = dg.DagsterInstance.ephemeral()
    outcome = refresh(spec, load_definitions(), instance, n_trials=3, seed=SEED)
    assert outcome.success, [r.errors for r in outcome.ingested] + [outcome.retrain]
    assert [r.partition for r in outcome.ingested] == [f"{first}..{last}"]  # one run

    storage = mlops_home / "storage" / "m5_sales"
    assert len(list((storage / "clean_data").glob("*.parquet"))) == DAYS
    train = pd.read_parquet(storage / "train_set.parquet")
    test = pd.read_parquet(storage / "test_set.parquet")
    assert test["date"].min() == pd.Timestamp(END) - pd.Timedelta(days=27)
    assert train["date"].max() < test["date"].min()
    assert set(derived_features(spec)) <= set(test.columns)
    assert test["_filled"].any()  # missing zero-sales days are rows of the test set too

    status = use_case_status(spec, MlflowTracking())
    champion = status[CHAMPION]
    assert champion is not None and champion["version"] == "1"
    assert set(spec_metrics(spec)) <= set(champion["metrics"])
    assert champion["metrics"]["rmsse"] < 1.0  # better than last week's sales
    pipeline = MlflowTracking().load_pipeline(spec.registered_model_name(), "1")
    scores = evaluate(model_spec(spec), pipeline, test)
    assert scores["rmsse"] == pytest.approx(champion["metrics"]["rmsse"], rel=1e-4)
    assert instance.get_latest_materialization_event(dg.AssetKey(["m5_sales", "champion_bento"]))

    # `mlops predict` on next week's rows: series, date and known covariates, no sales, no lags.
    from mlops_assets.generators import get_generator
    from mlops_assets.serving.batch import predict_file

    week = [END + dt.timedelta(days=n) for n in range(1, 8)]
    future = pd.concat([get_generator("m5_sales").generate(0, d, SEED) for d in week])
    source = mlops_home / "next_week.csv"
    future.drop(columns=["sales"]).to_csv(source, index=False)
    result = predict_file(spec, MlflowTracking(), source, mlops_home / "forecast.csv")
    assert result.rows_scored == len(future) and not result.problems
    forecast = pd.read_csv(result.output)
    assert forecast["prediction"].notna().all() and forecast["model_version"].eq(1).all()
