"""The real Dagster UI on a trained home: what it draws, asked through its GraphQL API.

``dg dev`` (``make dev``: webserver, daemon, code server) runs from the project's root on a home
where BigMart was trained (two days, a champion) and a third day was monitored. Through the API
the UI draws from, the tests check the lineage of one use case (exactly the asset graph's keys
and edges), the metadata the UI plots over partitions (the monitoring view included), the
sensors and schedules with their state and the reasons their ticks give, that a toggle in the
UI is what ``mlops status`` reports, and a run launched from the UI going through the run queue
and the daemon to success. The terminal of ``make dev`` stays quiet meanwhile.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets_tests.harness.dagster_ui import REPOSITORY_SELECTOR, DagsterUI, start_dagster_ui
from mlops_assets_tests.harness.homes import point_at_home

pytestmark = pytest.mark.integration
UC = "bigmart_sales"


@dataclass
class Served:
    """The running UI, the home it shows, and the definitions it loaded."""

    ui: DagsterUI
    home: Path
    days: list[str]
    definitions: dg.Definitions


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from mlops_assets.environment import Environment
    from mlops_assets.ingest.days import today
    from mlops_assets.ops.demo import land_generated_days
    from mlops_assets.ops.launch import ingest, instance, load_definitions, refresh
    from mlops_assets.specs import use_case_specs

    home = tmp_path_factory.mktemp("webserver") / "mlops"
    saved = dict(os.environ)
    with pytest.MonkeyPatch.context() as patch:
        point_at_home(patch, home)
        env = Environment.from_env()
        spec = use_case_specs()[UC]
        definitions = load_definitions()
        persistent = instance(env)
        yesterday = today() - dt.timedelta(days=1)
        days = land_generated_days(env, UC, days=2, rows=300, seed=3, end=yesterday)
        trained = refresh(spec, env, definitions, persistent, n_trials=2, seed=3)
        assert trained.success, [r.errors for r in trained.ingested] + [trained.retrain]
        days += land_generated_days(env, UC, days=1, rows=300, seed=4)
        monitored = ingest(spec, env, definitions, persistent)
        assert monitored.ingested and monitored.ingested[0].success
        variables = dict(os.environ)
        bin_dir = str(Path(sys.executable).parent)
        variables["PATH"] = f"{bin_dir}{os.pathsep}{variables.get('PATH', '')}"
        variables["VIRTUAL_ENV"] = str(Path(sys.executable).parent.parent)
        ui = start_dagster_ui(variables, home / "dg-dev.log")
        try:
            yield Served(ui, home, days, definitions)
        finally:
            ui.stop()
    os.environ.clear()
    os.environ.update(saved)


def path(key: dict) -> str:
    return "/".join(key["path"])


def test_the_lineage_is_the_asset_graph(served: Served) -> None:
    """The group's lineage: exactly the definitions' keys and edges, champion -> monitoring."""
    data = served.ui.graphql(
        """query ($group: AssetGroupSelector!) {
          assetNodes(group: $group) { assetKey { path } dependencyKeys { path } groupName } }""",
        {"group": {"groupName": UC, **REPOSITORY_SELECTOR}},
    )
    drawn = {
        path(n["assetKey"]): {path(d) for d in n["dependencyKeys"]} for n in data["assetNodes"]
    }
    graph = served.definitions.resolve_asset_graph()
    expected = {
        key.to_user_string(): {p.to_user_string() for p in graph.get(key).parent_keys}
        for key in graph.get_all_asset_keys()
        if graph.get(key).group_name == UC
    }
    assert drawn == expected
    assert f"{UC}/champion_model" in drawn[f"{UC}/model_performance"]
    assert f"{UC}/champion_model" in drawn[f"{UC}/data_drift"]


METADATA = """query ($key: AssetKeyInput!) { assetOrError(assetKey: $key) { ... on Asset {
  assetMaterializations(limit: 20) { partition metadataEntries { label __typename
    ... on FloatMetadataEntry { floatValue } ... on IntMetadataEntry { intValue }
    ... on MarkdownMetadataEntry { mdStr } ... on TextMetadataEntry { text } } } } } }"""


def plotted(ui: DagsterUI, asset: str) -> dict[str, dict[str, object]]:
    """Partition -> numeric (and markdown) metadata of its latest materialization."""
    data = ui.graphql(METADATA, {"key": {"path": [UC, asset]}})
    found: dict[str, dict[str, object]] = {}
    for event in data["assetOrError"]["assetMaterializations"]:  # newest first
        values = {}
        for entry in event["metadataEntries"]:
            for field in ("floatValue", "intValue", "mdStr"):
                if field in entry:
                    values[entry["label"]] = entry[field]
        found.setdefault(event["partition"], values)
    return found


def test_the_metadata_the_ui_plots_over_partitions(served: Served) -> None:
    clean = plotted(served.ui, "clean_data")
    assert set(clean) == set(served.days)
    assert all(values["rows_out"] == 300 for values in clean.values())
    performance = plotted(served.ui, "model_performance")
    judged = performance[served.days[-1]]  # the day after the champion's training window
    assert isinstance(judged["rmse"], float) and judged["rmse"] > 0
    assert len(f"{judged['rmse']:e}".split("e")[0].replace(".", "").rstrip("0")) <= 4
    assert isinstance(judged["degradation"], float)
    view = judged["monitoring_view"]
    assert isinstance(view, str) and view.startswith(f"![{UC} monitoring](data:image/png;base64,")


SENSORS = """query ($repo: RepositorySelector!) {
  sensorsOrError(repositorySelector: $repo) { ... on Sensors { results { name
    sensorState { id selectorId status ticks(limit: 5) { status skipReason } } } } }
  schedulesOrError(repositorySelector: $repo) { ... on Schedules { results { name
    scheduleState { status } } } } }"""


def automation(ui: DagsterUI) -> tuple[dict[str, dict], dict[str, str]]:
    data = ui.graphql(SENSORS, {"repo": REPOSITORY_SELECTOR})
    sensors = {s["name"]: s["sensorState"] for s in data["sensorsOrError"]["results"]}
    schedules = {
        s["name"]: s["scheduleState"]["status"] for s in data["schedulesOrError"]["results"]
    }
    return sensors, schedules


def test_sensors_and_schedules_with_their_state_and_reasons(served: Served) -> None:
    sensors, schedules = automation(served.ui)
    defined = {s.name: s.default_status.value for s in served.definitions.sensors or []}
    assert {name: state["status"] for name, state in sensors.items()} == defined
    assert schedules == {s.name: s.default_status.value for s in served.definitions.schedules or []}
    assert schedules[f"{UC}__simulate_daily"] == "STOPPED"
    # The daemon ticks each sensor soon after it starts; a skipped tick says why.
    deadline = time.monotonic() + 60
    reasons: dict[str, str] = {}
    while time.monotonic() < deadline and len(reasons) < 2:
        sensors, _ = automation(served.ui)
        for name in (f"{UC}__landing_sensor", f"{UC}__retrain_sensor"):
            skipped = [t for t in sensors[name]["ticks"] if t["status"] == "SKIPPED"]
            if skipped:
                reasons[name] = skipped[0]["skipReason"]
        time.sleep(2)
    assert reasons[f"{UC}__landing_sensor"].startswith(f"no new files for {UC} (")
    retrain = reasons[f"{UC}__retrain_sensor"]
    assert retrain.startswith("1 of 7 new days since ") and "cooldown until " in retrain


def test_a_toggle_in_the_ui_is_what_mlops_status_reports(served: Served) -> None:
    from mlops_assets.ops.toggles import retraining_state
    from mlops_assets.specs import use_case_specs

    spec = use_case_specs()[UC]
    name = f"{UC}__retrain_sensor"
    weekly = f"{UC}__weekly_retrain"
    with dg.DagsterInstance.get() as instance:
        assert retraining_state(spec, instance) == {
            name: "running",
            weekly: "running",
        }
        sensors, _ = automation(served.ui)
        stopped = served.ui.graphql(
            "mutation ($id: String) { stopSensor(id: $id) { __typename } }",
            {"id": sensors[name]["id"]},
        )
        assert stopped["stopSensor"]["__typename"] == "StopSensorMutationResult"
        assert automation(served.ui)[0][name]["status"] == "STOPPED"
        assert retraining_state(spec, instance)[name] == "stopped"
        started = served.ui.graphql(
            "mutation ($s: SensorSelector!) { startSensor(sensorSelector: $s) { __typename } }",
            {"s": {**REPOSITORY_SELECTOR, "sensorName": name}},
        )
        assert started["startSensor"]["__typename"] == "Sensor"
        assert retraining_state(spec, instance)[name] == "running"


def test_a_run_launched_in_the_ui_succeeds_through_the_daemon(served: Served) -> None:
    """The simulate job, as the Launchpad launches it: queued, dequeued by the daemon, run in a
    process of its own. It lands a day before the first partition, so no other run follows."""
    launched = served.ui.graphql(
        """mutation ($params: ExecutionParams!) { launchRun(executionParams: $params) {
          __typename ... on LaunchRunSuccess { run { runId status } }
          ... on PythonError { message }
          ... on RunConfigValidationInvalid { errors { message } } } }""",
        {
            "params": {
                "selector": {**REPOSITORY_SELECTOR, "jobName": f"{UC}__simulate_new_day"},
                "runConfigData": {
                    "ops": {f"{UC}__land_generated_day": {"config": {"day": "2023-12-30"}}}
                },
            }
        },
    )["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    deadline = time.monotonic() + 90
    status = launched["run"]["status"]
    while time.monotonic() < deadline and status not in {"SUCCESS", "FAILURE", "CANCELED"}:
        time.sleep(1)
        status = served.ui.graphql(
            "query ($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }", {"id": run_id}
        )["runOrError"]["status"]
    assert status == "SUCCESS"
    assert (served.home / "landing" / UC / "2023-12-30" / "generated.csv").exists()


def test_the_terminal_of_make_dev_stays_quiet(served: Served) -> None:
    """No Dagster beta/preview notice, no "dagster.yaml ... will not be used", no sensor ticks,
    no MLflow line, no event of the run: by now the daemon has ticked every sensor and run a
    job (the run's events are in its log in the UI)."""
    log = served.ui.log_path.read_text()
    for noise in (
        "BetaWarning",
        "PreviewWarning",
        "will not be used",
        "Checking for new runs",
        "mlflow",
        "Downloading artifacts",
    ):
        assert noise not in log, log[-3000:]
    assert len(log.splitlines()) <= 5, log[-3000:]
