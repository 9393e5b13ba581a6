"""Use-case specs: the model (``model.py``) and the catalog of every use case's ``defs.yaml``."""

from mlops_assets.specs.catalog import SpecError, use_case_instances, use_case_specs
from mlops_assets.specs.model import UseCaseSpec

__all__ = ["SpecError", "UseCaseSpec", "use_case_instances", "use_case_specs"]
