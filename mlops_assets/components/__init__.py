"""The Dagster definitions layer: the only modules building assets, sensors and resources.

A use case is one instance of the :class:`UseCase` component (``defs.yaml``).
"""

from mlops_assets.components.use_case import UseCase

__all__ = ["UseCase"]
