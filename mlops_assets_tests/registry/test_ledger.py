"""The append-only promotion ledger and the management commands that write to it."""

import datetime as dt

import pytest

from mlops_assets.cli import main
from mlops_assets.environment import Environment
from mlops_assets.features.cleaning import clean_frame
from mlops_assets.features.pipeline import model_input
from mlops_assets.generators import get_generator
from mlops_assets.names import CHAMPION
from mlops_assets.ops.management import ManagementError, delete_version, rollback
from mlops_assets.ops.serve import bento_store
from mlops_assets.registry.ledger import (
    LedgerEntry,
    append_entry,
    champion_on,
    previous_champion,
    read_ledger,
    training_window,
)
from mlops_assets.specs import use_case_specs
from mlops_assets.storage.objectstore import LocalObjectStore
from mlops_assets.training.families import build_pipeline
from mlops_assets.training.registration import log_and_register

UC = "bigmart_sales"


@pytest.fixture
def spec():
    return use_case_specs()[UC]


def gate(
    version: str, incumbent: str | None, promoted: bool, at: str, days=("", "")
) -> LedgerEntry:
    return LedgerEntry(
        action="promotion_gate",
        model_name=UC,
        champion_version=version if promoted else incumbent,
        reason="test",
        promoted=promoted,
        challenger_version=version,
        incumbent_version=incumbent,
        metric="rmse",
        challenger_score=100.0,
        challenger_train_first_day=days[0] or None,
        challenger_train_last_day=days[1] or None,
        at=at,
    )


def test_entries_are_appended_never_rewritten(tmp_path, spec) -> None:
    store = LocalObjectStore(tmp_path)
    assert read_ledger(store, spec).empty
    append_entry(store, spec, gate("1", None, True, "2025-01-01T10:00:00+00:00"))
    append_entry(store, spec, gate("2", "1", False, "2025-01-05T10:00:00+00:00"))
    append_entry(
        store, spec, gate("3", "1", True, "2025-01-09T10:00:00+00:00", ("2025-01-02", "2025-01-09"))
    )
    ledger = read_ledger(store, spec)
    assert list(ledger["challenger_version"]) == ["1", "2", "3"]
    assert len(list((tmp_path / UC / "ledger").iterdir())) == 3
    assert champion_on(ledger, "2024-12-31") is None
    assert champion_on(ledger, "2025-01-01") == "1"
    assert champion_on(ledger, "2025-01-08") == "1"
    assert champion_on(ledger, "2025-01-09") == "3"
    assert previous_champion(ledger, "3") == "1"
    assert training_window(ledger, "3") == ("2025-01-02", "2025-01-09")
    assert training_window(ledger, "2") is None


def register(spec, mlflow, alpha: float) -> str:
    frame, _ = clean_frame(get_generator(UC).generate(300, dt.date(2025, 1, 1), 1), spec)
    pipeline = build_pipeline(spec, "ridge", {"alpha": alpha})
    pipeline.fit(model_input(frame, spec), frame[spec.target.name])
    with mlflow.start_run(UC, "test", {}, None):
        return log_and_register(spec, mlflow, pipeline, frame.assign(_landed_date="2025-01-01"))


def test_rollback_and_delete(mlops_home, spec, capsys) -> None:
    env = Environment.from_env()
    mlflow, bentos = env.tracking(), bento_store(env)
    store = LocalObjectStore(mlops_home / "storage")
    for version, alpha in (("1", 1.0), ("2", 2.0), ("3", 3.0)):
        assert register(spec, mlflow, alpha) == version
    client = mlflow.client()
    # v1 champion, then v2 promoted over it, then v3 over v2.
    for version, incumbent, day in (("1", None, "01"), ("2", "1", "02"), ("3", "2", "03")):
        client.set_registered_model_alias(UC, CHAMPION, version)
        append_entry(store, spec, gate(version, incumbent, True, f"2025-02-{day}T00:00:00+00:00"))

    with pytest.raises(ManagementError, match="v3 is the champion and cannot be deleted"):
        delete_version(spec, mlflow, store, bentos, "3")

    entry = rollback(spec, mlflow, store)
    assert entry.reason == "rolled back from v3 to v2"
    assert str(mlflow.alias_version(UC, CHAMPION).version) == "2"
    # A second rollback keeps stepping back instead of toggling.
    assert rollback(spec, mlflow, store).champion_version == "1"
    with pytest.raises(ManagementError, match="replaced no earlier champion"):
        rollback(spec, mlflow, store)
    assert rollback(spec, mlflow, store, to_version="3").champion_version == "3"
    with pytest.raises(ManagementError, match="no version 9"):
        rollback(spec, mlflow, store, to_version="9")

    assert delete_version(spec, mlflow, store, bentos, "1").reason.startswith("deleted v1")
    assert "1" not in {str(v.version) for v in client.search_model_versions(f"name = '{UC}'")}

    ledger = read_ledger(store, spec)
    assert list(ledger["action"]) == ["promotion_gate"] * 3 + ["rollback"] * 3 + ["delete"]
    assert champion_on(ledger, "2099-01-01") == "3"

    assert main(["history", UC]) == 0
    out = capsys.readouterr().out
    assert "rolled back from v3 to v2" in out and "deleted v1" in out
    assert main(["delete", UC, "--version", "3"]) == 2
    assert "is the champion" in capsys.readouterr().err


def test_segment_rollback_moves_only_its_segment(mlops_home, capsys, monkeypatch) -> None:
    """A segmented use case: one ledger, read and rolled back per segment's model; the rollback
    is posted to the alert webhook."""
    from mlops_assets_tests.harness.webhook import Receiver

    webhook = Receiver()
    monkeypatch.setenv("MLOPS_ALERT_WEBHOOK", webhook.url)
    mushroom = use_case_specs()["mushroom"]
    mlflow = Environment.from_env().tracking()
    store = LocalObjectStore(mlops_home / "storage")
    frame, _ = clean_frame(
        get_generator("mushroom").generate(200, dt.date(2025, 1, 1), 1), mushroom
    )
    versions = {"cap_gill": ["1", "2"], "stem_season": ["1"]}
    for segment, numbers in versions.items():
        view = mushroom.segment_spec(segment)
        name = view.registered_model_name()
        for index, number in enumerate(numbers):
            pipeline = build_pipeline(view, "logistic_regression", {"C": 1.0 + index})
            pipeline.fit(model_input(frame, view), frame[mushroom.target.name].astype(str))
            with mlflow.start_run("mushroom", "test", {}, None):
                landed = frame.assign(_landed_date="2025-01-01")
                assert log_and_register(view, mlflow, pipeline, landed) == number
            mlflow.client().set_registered_model_alias(name, CHAMPION, number)
            entry = gate(
                number, numbers[index - 1] if index else None, True, f"2025-02-0{index + 1}"
            )
            entry.model_name, entry.segment, entry.metric = name, segment, "log_loss"
            append_entry(store, view, entry)

    assert main(["rollback", "mushroom", "--segment", "cap_gill"]) == 0
    assert "mushroom__cap_gill: rolled back from v2 to v1" in capsys.readouterr().out
    assert str(mlflow.alias_version("mushroom__cap_gill", CHAMPION).version) == "1"
    assert str(mlflow.alias_version("mushroom__stem_season", CHAMPION).version) == "1"
    assert main(["rollback", "mushroom", "--segment", "stem_season"]) == 2
    assert "replaced no earlier champion" in capsys.readouterr().err
    webhook.close()
    [alert] = webhook.received  # the refused rollback is not alerted
    assert (alert["kind"], alert["use_case"], alert["segment"]) == (
        "rollback",
        "mushroom",
        "cap_gill",
    )
    assert alert["text"] == "[mlops] mushroom__cap_gill: rolled back from v2 to v1"

    ledger = read_ledger(store, mushroom)
    assert list(ledger["segment"]) == ["cap_gill", "stem_season", "cap_gill", "cap_gill"]  # by time
    cap_gill = read_ledger(store, mushroom.segment_spec("cap_gill"))
    assert list(cap_gill["action"]) == ["promotion_gate", "promotion_gate", "rollback"]
    assert champion_on(cap_gill, "2099-01-01") == "1"
    assert (
        champion_on(read_ledger(store, mushroom.segment_spec("stem_season")), "2099-01-01") == "1"
    )
