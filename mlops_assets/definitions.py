"""The code location: every use case's ``defs.yaml``, with the environment's resources.

Bundled use cases load through Dagster's defs folder (``mlops_assets/defs/``); a user's own come
from outside folders (``MLOPS_SPECS_DIRS``), listed and validated by the same catalog function
the CLI uses.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from mlops_assets.components.alerts import build_run_failure_alerts
from mlops_assets.components.resources import executor_for, resources_for
from mlops_assets.components.use_case import UseCase
from mlops_assets.environment import Environment, quiet_libraries
from mlops_assets.specs.catalog import use_case_instances


@contextmanager
def known_previews() -> Iterator[None]:
    """Dagster's beta and preview notices about what this location uses on purpose.

    Range runs (``backfill_policy``), the component tree and its code references, and the
    ``owners`` of sensors the tree rebuilds are marked beta or preview in 1.13; the notices
    repeat each time the location loads (webserver, daemon, every run, every CLI command).
    Only these two categories, only while the definitions are built.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        warnings.simplefilter("ignore", dg.PreviewWarning)
        yield


@dg.definitions
def defs() -> dg.Definitions:
    """Definitions for every use case; built when Dagster loads the location, not at import.

    The defs folder is built through the project's component tree (what
    ``dg.load_from_defs_folder`` does), without the catalogue of every installed library's
    component types that the tree's root adds: that imports dagster-aws's components and boto3,
    two seconds of every process that loads the location, for types this project never uses.
    """
    env = Environment.from_env()
    quiet_libraries()
    outside = [i for i in use_case_instances(env.specs_dirs) if not i.bundled]
    with known_previews():
        tree = dg.ComponentTree.for_project(Path(__file__).parent)
        return dg.Definitions.merge(
            tree.build_defs(tree.defs_module_path),
            *(dg.build_defs_for_component(UseCase(i.spec)) for i in outside),
            dg.Definitions(
                sensors=[build_run_failure_alerts()],
                resources=resources_for(env),
                executor=executor_for(env),
                component_tree=tree,
            ),
        )
