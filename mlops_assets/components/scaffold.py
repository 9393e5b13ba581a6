"""``dg scaffold defs mlops_assets.components.UseCase <name>``: a new use case's ``defs.yaml``.

The skeleton is a valid spec from the first moment (the code location keeps loading), with a
comment on every field saying what to put there; the use case takes the folder's name.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

SKELETON = """\
# A use case: one model's life from landed batches to a served champion.
# Fill in the columns of your data, then: `dg check defs`, `mlops land {name} FILE`,
# `mlops refresh {name}`. Every field is described in the README's spec table.
type: {type_name}
attributes:
  name: {name}                      # snake_case; prefixes every asset key and the model name
  description: "What is predicted, from what."
  task: regression                  # regression | binary | multiclass | forecast
  target:
    name: target                    # the column to predict
    # classes: [no, yes]            # binary/multiclass: the labels (and positive_class)
    # min: 0                        # regression: predictions are clipped into min/max
  id_columns:                       # columns identifying a row (echoed back by the service)
    - {{name: id, type: categorical, closed: false, nullable: false}}
  features:                         # every input column: numeric | integer | categorical | date
    - {{name: amount, type: numeric, min: 0}}
    - name: kind
      type: categorical
      closed: false                 # true: values outside `categories` are invalid
      categories: [a, b]
      cleaning: [{{rule: strip}}]    # strip, map_values, null_if, clip
  primary_metric: rmse              # drives tuning and promotion (checked against the task)
  reported_metrics: [mae, r2]
  partitions:
    start_date: {start}             # first daily partition
    by: landing_date                # or event_date with date_column: <column>
  split:
    method: hash                    # hash (by identity columns) or time (test_days)
    by: [id]
    test_fraction: 0.2
  training_window_days: 90          # days of clean data used for training (omit: all)
  models:                           # candidate families and their search spaces
    - family: catboost
      search_space:
        depth: {{type: int, low: 4, high: 8}}
    - family: ridge
      search_space:
        alpha: {{type: float, low: 0.001, high: 100, log: true}}
  tuning:
    n_trials: 16                    # Optuna trials per retrain
  promotion:
    margin: 0.01                    # relative improvement a challenger needs
  retraining:
    new_partitions: 7               # K: retrain after this many new days
    max_metric_degradation: 0.2     # X: or when the champion's error grew by this share
    max_psi: 0.2                    # Y: or when a feature drifted this much
  min_rows_per_batch: 1
"""


class UseCaseScaffolder(dg.Scaffolder):
    """Writes a commented, valid ``defs.yaml`` for a new use case named after its folder."""

    def scaffold(self, request: dg.ScaffoldRequest) -> None:
        """Create ``<target>/defs.yaml`` (an existing one is left alone)."""
        request.target_path.mkdir(parents=True, exist_ok=True)
        target = request.target_path / "defs.yaml"
        if target.exists():
            return
        target.write_text(
            SKELETON.format(
                type_name=request.type_name,
                name=request.target_path.name,
                start=dt.date.today().replace(day=1).isoformat(),
            )
        )
