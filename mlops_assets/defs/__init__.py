"""The defs folder: one ``<use_case>/defs.yaml`` instance of the ``UseCase`` component each.

Loaded by Dagster's defs-folder loader (``definitions.py``); ``dg scaffold defs
mlops_assets.components.UseCase <name>`` adds a use case here.
"""
