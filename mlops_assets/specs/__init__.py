"""Use-case specs: the model (``model.py``), the loader and the bundled YAML specs."""

from mlops_assets.specs.loader import SpecError, load_spec, load_specs
from mlops_assets.specs.model import UseCaseSpec

__all__ = ["SpecError", "UseCaseSpec", "load_spec", "load_specs"]
