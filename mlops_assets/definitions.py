"""The code location: every use case's ``defs.yaml``, with the environment's resources.

Bundled use cases load through Dagster's defs folder (``mlops_assets/defs/``); a user's own come
from outside folders (``MLOPS_SPECS_DIRS``), listed and validated by the same catalog function
the CLI uses.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from mlops_assets.components.resources import executor_for, resources_for
from mlops_assets.components.use_case import UseCase
from mlops_assets.environment import Environment
from mlops_assets.specs.catalog import use_case_instances


@dg.definitions
def defs() -> dg.Definitions:
    """Definitions for every use case; built when Dagster loads the location, not at import.

    The defs folder is built through the project's component tree (what
    ``dg.load_from_defs_folder`` does), without the catalogue of every installed library's
    component types that the tree's root adds: that imports dagster-aws's components and boto3,
    two seconds of every process that loads the location, for types this project never uses.
    """
    env = Environment.from_env()
    outside = [i for i in use_case_instances(env.specs_dirs) if not i.bundled]
    tree = dg.ComponentTree.for_project(Path(__file__).parent)
    return dg.Definitions.merge(
        tree.build_defs(tree.defs_module_path),
        *(dg.build_defs_for_component(UseCase(i.spec)) for i in outside),
        dg.Definitions(
            resources=resources_for(env), executor=executor_for(env), component_tree=tree
        ),
    )
