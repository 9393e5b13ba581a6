"""Model preprocessing: the frame a model sees, and imputers fitted on training rows only.

Both training and the service call :func:`model_input` and load pipelines that start with a
``GroupImputer``, so a served record is prepared exactly as a training row was.

``GroupImputer`` and ``FeatureSelector`` are scikit-learn estimators, so their classes need
scikit-learn's base classes. They are created on first access (the module's ``__getattr__``),
which keeps importing this module free of scikit-learn (5 s here): the code location imports it
at load, and only a step that fits or loads a model pays for scikit-learn. Pickled pipelines name
them ``mlops_assets.features.pipeline.GroupImputer`` as before, and unpickling one creates them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from mlops_assets.features.derived import group_stats, model_spec, with_derived
from mlops_assets.specs.model import ColumnSpec, GroupImputerSpec, UseCaseSpec

Columns = dict[str, list[Any]]
"""A small batch as the compiled executor holds it: one list per column, missing as NaN."""
MISSING = math.nan


def is_missing(value: Any) -> bool:
    """Missing as pandas' ``isna`` sees a model input value: None or NaN."""
    return value is None or (isinstance(value, float) and value != value)


def model_input(frame: pd.DataFrame, spec: UseCaseSpec) -> pd.DataFrame:
    """Ids and features in spec order with dtypes scikit-learn and CatBoost agree on.

    The columns are those of the model's spec (:func:`~mlops_assets.features.derived.
    model_spec`, whichever spec is passed), and the row-level derived features are computed
    here, the one place every stage builds model input. Text columns become ``object`` with
    ``NaN`` for missing (``None`` is not seen as missing by scikit-learn's imputers); integers
    become floats (nullable ``Int64`` is not accepted).
    """
    spec = model_spec(spec)
    frame = with_derived(frame, spec)
    columns: dict[str, pd.Series] = {}
    for column in spec.input_columns:
        values = (
            frame[column.name]
            if column.name in frame.columns
            else pd.Series(np.nan, index=frame.index)
        )
        if column.type in {"numeric", "integer"}:
            columns[column.name] = pd.to_numeric(values, errors="coerce").astype("float64")
        elif column.type == "date":
            columns[column.name] = pd.to_datetime(values, errors="coerce")
        else:
            text = values.astype(object)
            columns[column.name] = text.where(text.notna(), np.nan)
    return pd.DataFrame(columns, index=frame.index)


def model_value(column: ColumnSpec) -> Callable[[Any], Any] | None:
    """:func:`model_input` of one cleaned value (None: missing) of ``column``.

    ``None`` for a type with no per-value form (dates: the compiled executor refuses them).
    """
    if column.type in {"numeric", "integer"}:
        return lambda value: MISSING if value is None else float(value)
    if column.type == "date":
        return None
    return lambda value: MISSING if value is None else value


def group_imputers(spec: UseCaseSpec) -> list[dict[str, str]]:
    """The spec's group imputers as plain dicts (picklable without the spec classes)."""
    return [imp.model_dump() for imp in spec.group_imputers]


def group_stat_rules(spec: UseCaseSpec) -> list[dict[str, str]]:
    """The spec's group statistics as plain dicts (picklable without the spec classes)."""
    return [
        {"name": f.name, "column": f.column, "group_by": f.group_by, "stat": f.stat}
        for f in group_stats(spec)
    ]


TRANSFORMERS = ("GroupImputer", "GroupStat", "FeatureSelector")
"""The pipeline's own transformers; each has ``transform`` and its compiled form, ``compiled``."""
MISSING_TEXT = "__missing__"
"""What a missing category is to the model (``FeatureSelector``)."""
_classes: dict[str, type] = {}


def __getattr__(name: str) -> Any:
    """``GroupImputer`` and ``FeatureSelector``, created with scikit-learn on first access."""
    if name in TRANSFORMERS:
        return transformer_classes()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def transformer_classes() -> dict[str, type]:
    """The pipeline's own scikit-learn transformers, by name (created once per process)."""
    if not _classes:
        _classes.update(_define_transformers())
        globals().update(_classes)  # later lookups (and pickle's) find them as module attributes
    return _classes


def _define_transformers() -> dict[str, type]:
    from sklearn.base import BaseEstimator, TransformerMixin

    class GroupImputer(BaseEstimator, TransformerMixin):
        """Fill a column from its group's statistic (per-item weight, per-outlet-type size).

        Falls back to the column's overall statistic for groups unseen in training.
        """

        def __init__(self, rules: list[dict[str, str]] | None = None) -> None:
            self.rules = rules

        def fit(self, X: pd.DataFrame, y: Any = None) -> GroupImputer:  # noqa: N803 (sklearn API)
            """Learn each rule's per-group and overall statistic from training rows."""
            self.stats_: list[tuple[dict[Any, Any], Any]] = []
            for rule in self.rules or []:
                spec = GroupImputerSpec(**rule)
                values = X[spec.column]
                groups = X[spec.group_by]
                known = values.notna() & groups.notna()
                if spec.strategy == "mode":
                    per_group = (
                        values[known]
                        .groupby(groups[known])
                        .agg(lambda s: s.mode().iloc[0])
                        .to_dict()
                    )
                    overall = values.mode().iloc[0] if values.notna().any() else np.nan
                else:
                    per_group = values[known].groupby(groups[known]).agg(spec.strategy).to_dict()
                    overall = getattr(values, spec.strategy)() if values.notna().any() else np.nan
                self.stats_.append((per_group, overall))
            return self

        def transform(self, X: pd.DataFrame) -> pd.DataFrame:  # noqa: N803 (sklearn API)
            """Fill missing values of each rule's column; other columns pass through."""
            X = X.copy()
            for rule, (per_group, overall) in zip(self.rules or [], self.stats_, strict=True):
                column, group_by = rule["column"], rule["group_by"]
                missing = X[column].isna()
                if not missing.any():
                    continue
                filled = X.loc[missing, group_by].map(per_group)
                if X[column].dtype == object:
                    filled = filled.astype(object)
                X.loc[missing, column] = filled.where(filled.notna(), overall)
            return X

        def compiled(self) -> Callable[[Columns], Columns]:
            """:meth:`transform` of a small batch's column lists (the compiled executor's form).

            The fitted tables are read once here; a missing value takes its group's statistic,
            else (unseen or missing group) the overall one, as :meth:`transform` does.
            """
            plans = [
                (rule["column"], rule["group_by"], per_group, overall)
                for rule, (per_group, overall) in zip(self.rules or [], self.stats_, strict=True)
            ]

            def impute(columns: Columns) -> Columns:
                for column, group_by, per_group, overall in plans:
                    values = columns[column]
                    if not any(map(is_missing, values)):
                        continue
                    groups = columns[group_by]
                    filled = []
                    for value, group in zip(values, groups, strict=True):
                        if is_missing(value):
                            value = MISSING if is_missing(group) else per_group.get(group)
                            value = overall if value is None or is_missing(value) else value
                        filled.append(value)
                    columns = {**columns, column: filled}
                return columns

            return impute

    class GroupStat(BaseEstimator, TransformerMixin):
        """Add a column's statistic per group (an item's mean price), learnt on training rows.

        A group unseen in training, or a row without a group, gets the overall statistic, so a
        single served record is handled like a batch.
        """

        def __init__(self, rules: list[dict[str, str]] | None = None) -> None:
            self.rules = rules

        def fit(self, X: pd.DataFrame, y: Any = None) -> GroupStat:  # noqa: N803 (sklearn API)
            """Learn each rule's per-group and overall statistic from training rows."""
            self.stats_: list[tuple[dict[Any, float], float]] = []
            for rule in self.rules or []:
                values = pd.to_numeric(X[rule["column"]], errors="coerce")
                groups = X[rule["group_by"]]
                if rule["stat"] == "count":
                    per_group = groups.value_counts().astype("float64").to_dict()
                    overall = float(np.median(list(per_group.values()))) if per_group else 0.0
                else:
                    known = values.notna() & groups.notna()
                    per_group = values[known].groupby(groups[known]).agg(rule["stat"]).to_dict()
                    overall = float(getattr(values, rule["stat"])()) if known.any() else np.nan
                self.stats_.append((per_group, overall))
            return self

        def transform(self, X: pd.DataFrame) -> pd.DataFrame:  # noqa: N803 (sklearn API)
            """Each rule's column: the row's group statistic, else the overall one."""
            X = X.copy()
            for rule, (per_group, overall) in zip(self.rules or [], self.stats_, strict=True):
                mapped = X[rule["group_by"]].map(per_group).astype("float64")
                X[rule["name"]] = mapped.where(mapped.notna(), overall)
            return X

        def compiled(self) -> Callable[[Columns], Columns]:
            """:meth:`transform` of a small batch's column lists (the compiled executor's form).

            The fitted tables are read once here; a row's group statistic, else the overall one
            (unseen or missing group, or a group whose statistic is missing), as ``transform``.
            """
            plans = [
                (rule["name"], rule["group_by"], per_group, overall)
                for rule, (per_group, overall) in zip(self.rules or [], self.stats_, strict=True)
            ]

            def add(columns: Columns) -> Columns:
                for name, group_by, per_group, overall in plans:
                    found = [
                        None if is_missing(group) else per_group.get(group)
                        for group in columns[group_by]
                    ]
                    columns = {
                        **columns,
                        name: [
                            float(overall) if value is None or is_missing(value) else float(value)
                            for value in found
                        ],
                    }
                return columns

            return add

    class FeatureSelector(BaseEstimator, TransformerMixin):
        """Keep the model's features (ids were needed only by the imputers)."""

        def __init__(self, features: list[str] | None = None, categorical: list[str] | None = None):
            self.features = features
            self.categorical = categorical

        def fit(self, X: pd.DataFrame, y: Any = None) -> FeatureSelector:  # noqa: N803
            """Nothing to learn; remembers that it was fitted (scikit-learn checks pipelines)."""
            self.fitted_ = True
            return self

        def transform(self, X: pd.DataFrame) -> pd.DataFrame:  # noqa: N803
            """The feature columns, with missing categories as the text ``__missing__``."""
            frame = X[list(self.features or [])].copy()
            for name in self.categorical or []:
                frame[name] = frame[name].astype(object).where(frame[name].notna(), MISSING_TEXT)
                frame[name] = frame[name].astype(str)
            return frame

        def compiled(self) -> Callable[[Columns], Columns]:
            """:meth:`transform` of a small batch's column lists (the compiled executor's form)."""
            features = list(self.features or [])
            categorical = set(self.categorical or [])

            def select(columns: Columns) -> Columns:
                return {
                    name: [MISSING_TEXT if is_missing(v) else str(v) for v in columns[name]]
                    if name in categorical
                    else columns[name]
                    for name in features
                }

            return select

    classes = {
        "GroupImputer": GroupImputer,
        "GroupStat": GroupStat,
        "FeatureSelector": FeatureSelector,
    }
    for cls in classes.values():
        cls.__module__ = __name__
        cls.__qualname__ = cls.__name__
    return classes
