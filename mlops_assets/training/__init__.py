"""Model families, search spaces, the Optuna objective and ``tuned_model``."""
