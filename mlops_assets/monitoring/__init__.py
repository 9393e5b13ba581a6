"""Monitoring: each slot's champion judged per day, drift, summaries and the retraining policy."""
