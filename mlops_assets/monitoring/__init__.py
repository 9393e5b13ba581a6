"""Monitoring (error metrics and drift per day) and the retraining policy built on them."""
