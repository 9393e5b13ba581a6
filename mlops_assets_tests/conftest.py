"""Shared fixtures: an isolated MLOPS_HOME per test, and one trained BigMart home per session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets_tests.harness.homes import point_at_home


def pytest_itemcollected(item: pytest.Item) -> None:
    """Tests run on xdist workers by file, and the session's trained home is trained once.

    ``make test`` runs ``pytest -n 2 --dist loadgroup`` (one worker per core). Each file is one
    group (its module fixtures are built once, as with ``--dist loadfile``), but every test needing
    ``trained_home`` (directly or through a fixture) joins one group, on one worker. Marked as
    each item is collected: xdist reads the groups in its ``pytest_collection_modifyitems``,
    which may run before a conftest's.
    """
    shared = "trained_home" in getattr(item, "fixturenames", ())
    group = "trained_home" if shared else item.nodeid.split("::")[0]
    item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture
def mlops_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty MLOPS_HOME for one test."""
    home = tmp_path / "mlops"
    point_at_home(monkeypatch, home)
    return home


@dataclass
class TrainedHome:
    """A home where BigMart days were landed, ingested, tuned and promoted once."""

    home: Path
    instance: dg.DagsterInstance
    definitions: dg.Definitions
    days: list[str]
    outcome: object


@pytest.fixture(scope="session")
def trained_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrainedHome]:
    """One full BigMart refresh shared by the tests that only read its results."""
    from mlops_assets.environment import Environment
    from mlops_assets.ops.demo import land_generated_days
    from mlops_assets.ops.launch import load_definitions, refresh
    from mlops_assets.specs import use_case_specs

    home = tmp_path_factory.mktemp("trained") / "mlops"
    saved = dict(os.environ)
    with pytest.MonkeyPatch.context() as patch:
        point_at_home(patch, home)
        env = Environment.from_env()
        days = land_generated_days(env, "bigmart_sales", days=4, rows=500, seed=3)
        instance = dg.DagsterInstance.ephemeral()
        definitions = load_definitions()
        spec = use_case_specs()["bigmart_sales"]
        outcome = refresh(spec, env, definitions, instance, n_trials=8, seed=3)
        assert outcome.success, [r.errors for r in outcome.ingested] + [outcome.retrain]
        yield TrainedHome(home, instance, definitions, days, outcome)
    os.environ.clear()
    os.environ.update(saved)
