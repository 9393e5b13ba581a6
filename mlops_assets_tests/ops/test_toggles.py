"""``mlops status`` reports a retraining switch as the UI draws it: ``running`` or ``stopped``.

A switch nobody has toggled has no stored state (or ``DECLARED_IN_CODE``, which the daemon
stores as it ticks); it follows its ``default_status`` in code. The CLI round trip through
``dagster sensor stop`` is in ``monitoring/test_toggles.py``.
"""

import dagster as dg
import pytest

from mlops_assets import names
from mlops_assets.components.automation import retraining_defaults
from mlops_assets.ops.toggles import retraining_state, shown_state
from mlops_assets.specs import use_case_specs


@pytest.mark.parametrize(
    ("stored", "default_running", "shown"),
    [
        (None, True, "running"),
        (None, False, "stopped"),
        ("DECLARED_IN_CODE", True, "running"),
        ("DECLARED_IN_CODE", False, "stopped"),  # a lingering row after the default changed
        ("RUNNING", False, "running"),
        ("STOPPED", True, "stopped"),
    ],
)
def test_an_untouched_switch_follows_its_default(
    stored: str | None, default_running: bool, shown: str
) -> None:
    assert shown_state(stored, default_running) == shown


def test_the_defaults_are_read_from_the_definitions() -> None:
    spec = use_case_specs()["bigmart_sales"]
    defaults = retraining_defaults(spec)
    assert set(defaults) == {name for _, name in names.retraining_instigators(spec.name)}
    assert defaults == {
        "bigmart_sales__retrain_sensor": True,
        "bigmart_sales__weekly_retrain": True,
    }


def test_a_fresh_instance_reports_running_not_declared_in_code() -> None:
    spec = use_case_specs()["mushroom"]
    with dg.instance_for_test() as instance:
        assert list(instance.all_instigator_state()) == []
        assert retraining_state(spec, instance) == {
            "mushroom__retrain_sensor": "running",
            "mushroom__weekly_retrain": "running",
        }
