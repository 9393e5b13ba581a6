"""The forecast use case end to end: a landed history file to a champion, served and monitored.

One generated history file (3 stores x 10 items, about three months, zero-sales rows partly
missing) lands in a fresh ``MLOPS_HOME``; ``refresh`` ingests it as one run over its event dates,
then splits by time (the last 28 days are the test set), tunes, gates and builds the bento. The
champion must beat the seasonal-naive forecast (RMSSE below 1), report every metric of the spec,
reproduce its recorded test score, and forecast next week from series, dates and covariates
alone (``mlops predict``: lags come from the stored history).

Then the bento is served for real (``bentoml serve``) and asked for next week; next week's
actual sales land and are ingested, and the monitoring of those days must score the champion
out of sample (the same numbers as scoring the days offline), and score the forecasts the
service logged.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from mlops_assets.specs import UseCaseSpec, use_case_specs
from mlops_assets_tests.harness.homes import point_at_home

END = dt.date(2025, 6, 30)
DAYS, SEED = 100, 5
NEXT_WEEK = [END + dt.timedelta(days=n) for n in range(1, 8)]


@dataclass
class ForecastHome:
    home: Path
    spec: UseCaseSpec
    instance: dg.DagsterInstance
    definitions: dg.Definitions
    first: str
    outcome: object


@pytest.fixture(scope="module")
def forecast_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ForecastHome]:
    """m5_sales refreshed once from a landed history file, in this module's own home."""
    import mlflow

    from mlops_assets.environment import Environment
    from mlops_assets.ops.demo import land_history
    from mlops_assets.ops.launch import load_definitions, refresh

    home = tmp_path_factory.mktemp("forecast") / "mlops"
    saved = dict(os.environ)
    saved_uris = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    with pytest.MonkeyPatch.context() as patch:
        point_at_home(patch, home)
        spec = use_case_specs()["m5_sales"]
        env = Environment.from_env()
        first, _ = land_history(env, "m5_sales", days=DAYS, seed=SEED, end=END)
        instance = dg.DagsterInstance.ephemeral()
        definitions = load_definitions()
        outcome = refresh(spec, env, definitions, instance, n_trials=3, seed=SEED)
        yield ForecastHome(home, spec, instance, definitions, first, outcome)
    os.environ.clear()
    os.environ.update(saved)
    mlflow.set_tracking_uri(saved_uris[0])
    mlflow.set_registry_uri(saved_uris[1])


def next_week_rows() -> pd.DataFrame:
    """Next week's generated rows, sales included (the same days a longer history would hold)."""
    from mlops_assets.generators import get_generator

    return pd.concat([get_generator("m5_sales").generate(0, d, SEED) for d in NEXT_WEEK])


def test_m5_sales_materializes_end_to_end(forecast_home: ForecastHome) -> None:
    from mlops_assets.components.monitoring import performance_key
    from mlops_assets.environment import Environment
    from mlops_assets.features.derived import model_spec
    from mlops_assets.features.forecast import derived_features
    from mlops_assets.names import CHAMPION
    from mlops_assets.registry.status import slot_status
    from mlops_assets.training.evaluation import evaluate, spec_metrics

    spec, outcome = forecast_home.spec, forecast_home.outcome
    assert outcome.success, [r.errors for r in outcome.ingested] + [outcome.retrain]
    assert [r.partition for r in outcome.ingested] == [f"{forecast_home.first}..{END}"]  # 1 run

    storage = forecast_home.home / "storage" / "m5_sales"
    stored = sorted(p.stem for p in (storage / "clean_data").glob("*.parquet"))
    assert len([d for d in stored if d <= END.isoformat()]) == DAYS
    train = pd.read_parquet(storage / "train_set.parquet")
    test = pd.read_parquet(storage / "test_set.parquet")
    assert test["date"].min() == pd.Timestamp(END) - pd.Timedelta(days=27)
    assert train["date"].max() < test["date"].min()
    assert set(derived_features(spec)) <= set(test.columns)
    assert test["_filled"].any()  # missing zero-sales days are rows of the test set too

    env = Environment.from_env()
    tracking = env.tracking()
    status = slot_status(spec, tracking)
    champion = status[CHAMPION]
    assert champion is not None and champion["version"] == "1"
    assert set(spec_metrics(spec)) <= set(champion["metrics"])
    assert champion["metrics"]["rmsse"] < 1.0  # better than last week's sales
    pipeline = tracking.load_pipeline(spec.registered_model_name(), "1")
    scores = evaluate(model_spec(spec), pipeline, test)
    assert scores["rmsse"] == pytest.approx(champion["metrics"]["rmsse"], rel=1e-4)
    instance = forecast_home.instance
    assert instance.get_latest_materialization_event(dg.AssetKey(["m5_sales", "champion_bento"]))
    # The history was ingested before any model existed: its monitoring recorded nothing.
    assert instance.get_latest_materialization_event(performance_key(spec)) is None

    # `mlops predict` on next week's rows: series, date and known covariates, no sales, no lags.
    from mlops_assets.ops.predict import predict_file

    future = next_week_rows()
    source = forecast_home.home / "next_week.csv"
    future.drop(columns=["sales"]).to_csv(source, index=False)
    result = predict_file(spec, env, source, forecast_home.home / "forecast.csv")
    assert result.rows_scored == len(future) and not result.problems
    forecast = pd.read_csv(result.output)
    assert forecast["prediction"].notna().all() and forecast["model_version"].eq(1).all()


def between(rows: pd.DataFrame, first: dt.date, last: dt.date) -> pd.DataFrame:
    """The rows dated ``first..last``."""
    dates = pd.to_datetime(rows["date"])
    return rows[(dates >= pd.Timestamp(first)) & (dates <= pd.Timestamp(last))]


def served_forecasts(spec: UseCaseSpec, home: Path, rows: pd.DataFrame) -> pd.DataFrame:
    """Next week forecast by the champion's bento under ``bentoml serve``, its log flushed."""
    from mlops_assets.environment import Environment
    from mlops_assets.ops.serve import bento_store
    from mlops_assets_tests.harness.bento import start_bento
    from mlops_assets_tests.harness.records import records

    tag = bento_store(Environment.from_env()).current_bento_tag(spec)
    assert tag is not None, "the retrain job did not build the champion's bento"
    server = start_bento(
        tag,
        home / "serve",
        MLOPS_STORAGE_URI=str(home / "storage"),  # the history the lags are read from
        MLOPS_PREDICTION_LOG_FLUSH_S="1",
    )
    fields = [c.name for c in spec.input_columns]
    try:
        answer = server.predict({"records": records(rows, fields)})
        assert answer.status_code == 200, answer.text
        without_id = server.predict(
            {"records": [{k: v for k, v in records(rows, fields)[0].items() if k != "id"}]}
        )
    finally:
        server.stop()  # SIGTERM flushes the prediction log
    assert without_id.status_code == 422 and "id" in without_id.text
    body = answer.json()
    assert body["model_version"] == "1"
    return rows.assign(prediction=body["predictions"])


@pytest.mark.integration
def test_served_forecasts_are_monitored_when_the_actuals_land(
    forecast_home: ForecastHome,
) -> None:
    """The bento forecasts next week; the week's actuals land; monitoring scores both."""
    from mlops_assets.components.monitoring import drift_key, performance_key
    from mlops_assets.environment import Environment
    from mlops_assets.features.derived import model_spec
    from mlops_assets.features.forecast import prepare_history
    from mlops_assets.monitoring.summary import read_summary
    from mlops_assets.ops.demo import land_history
    from mlops_assets.ops.launch import refresh
    from mlops_assets.ops.predict import predict_file
    from mlops_assets.training.evaluation import evaluate

    spec, home = forecast_home.spec, forecast_home.home
    env = Environment.from_env()
    assert forecast_home.outcome.success
    week = next_week_rows()
    served = served_forecasts(spec, home, week.drop(columns=["sales"]))
    # The service derived the same lags from the stored history as the batch path.
    source = home / "served_week.csv"
    week.drop(columns=["sales"]).to_csv(source, index=False)
    batch = pd.read_csv(predict_file(spec, env, source, home / "batch.csv").output)
    assert served["prediction"].to_numpy() == pytest.approx(batch["prediction"].to_numpy())

    # Next week's actual sales land (one extract of seven days) and are ingested; no retrain.
    arrived = NEXT_WEEK[-1] + dt.timedelta(days=1)
    land_history(env, "m5_sales", len(NEXT_WEEK), SEED, end=NEXT_WEEK[-1], landed_on=arrived)
    instance = forecast_home.instance
    outcome = refresh(spec, env, forecast_home.definitions, instance, train=False)
    assert outcome.success, [r.errors for r in outcome.ingested]
    assert [r.partition for r in outcome.ingested] == [f"{NEXT_WEEK[0]}..{NEXT_WEEK[-1]}"]

    def metadata(key: dg.AssetKey, day: dt.date) -> dict:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=[day.isoformat()]), limit=1
        ).records
        assert records, f"{key.to_user_string()} has no materialization for {day}"
        found = records[0].asset_materialization
        assert found is not None
        return {k: getattr(v, "value", v) for k, v in found.metadata.items()}

    # Offline: the same days scored from the whole stored history by the training code.
    storage = home / "storage" / "m5_sales" / "clean_data"
    clean = pd.concat(pd.read_parquet(p) for p in sorted(storage.glob("*.parquet")))
    rows = prepare_history(clean, spec)
    pipeline = env.tracking().load_pipeline(spec.registered_model_name(), "1")
    for day in (NEXT_WEEK[2], NEXT_WEEK[-1]):
        performance = metadata(performance_key(spec), day)
        assert performance["status"] == "scored out of sample"
        assert performance["champion_version"] == "1"
        # The week ending the day: all of it is after the champion's training days (the
        # history's last 28 days were its test set), so all of it is scored.
        start = day - dt.timedelta(days=6)
        assert performance["scored_days"] == f"{start}..{day}"
        offline = evaluate(model_spec(spec), pipeline, between(rows, start, day))
        # Exactly in the typed summary the policy reads; to 4 significant digits in the
        # metadata people read.
        summary = read_summary(env.lake(), spec, day.isoformat())
        assert summary is not None
        assert summary.slots[0].score == pytest.approx(offline["rmsse"], rel=1e-6)
        assert performance["rmsse"] == pytest.approx(offline["rmsse"], rel=5e-4)
        assert performance["mae"] == pytest.approx(offline["mae"], rel=5e-4)
        assert {"degradation", "metric_change", "reference_rmsse"} <= set(performance)
        # The forecasts the service logged for those days are scored against the actuals.
        asked = between(rows, NEXT_WEEK[0], day)
        asked = asked[~asked["_filled"]]  # a day a series sold nothing was not in the request
        assert performance["served_rows"] == len(asked)
        served_score = evaluate(model_spec(spec), pipeline, asked)["rmsse"]
        assert performance["served_rmsse"] == pytest.approx(served_score, rel=5e-4)
        drift = metadata(drift_key(spec), day)
        assert drift["rows"] == (rows["date"] == pd.Timestamp(day)).sum()
        assert {"max_psi", "psi_lag_7", "psi_sell_price", "prediction_psi"} <= set(drift)
    # The history's days, ingested before any model existed, have no monitoring record.
    history_day = dg.AssetRecordsFilter(
        asset_key=performance_key(spec), asset_partitions=[END.isoformat()]
    )
    assert not instance.fetch_materializations(history_day, limit=1).records
