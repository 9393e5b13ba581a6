"""MLflow tracking and registry, the promotion gate and ``champion_model``."""
