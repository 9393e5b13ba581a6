"""Continuous training on Dagster: tabular batches to a served, monitored champion model."""
