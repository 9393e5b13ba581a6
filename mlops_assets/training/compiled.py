"""A fitted model pipeline compiled for small batches: its learned state applied without pandas.

The vectorised path (:func:`~mlops_assets.training.families.predict_frame`) hands a DataFrame to
the scikit-learn pipeline; each step pays a fixed cost per call (column checks, copies, feature
name checks) that dwarfs the work for a few records. :func:`compile_model` turns the fitted
pipeline into a sequence of steps over plain column lists, built once per model:

- :func:`~mlops_assets.features.pipeline.model_input` per value (the spec's column types);
- the pipeline's own transformers by their ``compiled`` form, defined beside their
  ``transform`` (``GroupImputer``: the fitted group tables; ``FeatureSelector``);
- scikit-learn's encoders by their fitted state: the ``ColumnTransformer``'s numeric imputer
  (medians, missing indicators) and scaler as array arithmetic, the one-hot encoder as lookup
  tables made by the encoder itself (every category it knows, and an unseen one, transformed
  once);
- the estimator called on arrays arranged once per batch: CatBoost on a ``Pool`` with its
  categorical features, the other families on the float matrix their encoder produces.

Nothing is re-fitted or re-derived: each step reads the fitted object. A step of a kind not
listed here (a new transformer, a new family) raises :class:`NotCompilable` naming it, and the
service keeps that model on the vectorised path, saying why (``serving/compiled.py``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlops_assets.features.derived import derive_value, model_spec, row_level
from mlops_assets.features.pipeline import MISSING, Columns, model_value
from mlops_assets.specs.model import DatePartFeature, UseCaseSpec
from mlops_assets.training.families import clip_to_target, ordered_probabilities

Batch = Any  # a Columns mapping, or a float matrix once encoded
Step = Callable[[Batch], Batch]


class NotCompilable(ValueError):
    """A model, spec or pipeline step the compiled executor has no form for (the message says)."""


@dataclass
class CompiledModel:
    """A fitted pipeline as a sequence of compiled steps, ending with the estimator's call.

    Attributes:
        steps: ``(name, step)`` in order: the spec's model input, then one per pipeline step.
        predict_raw: The estimator: model rows -> predictions, or class probabilities.
        classes: The estimator's classes (classifiers), in its own order.
        exact: Whether predictions are bitwise those of the vectorised path (tree models);
            linear models sum with BLAS, which may round differently for another batch shape.
    """

    spec: UseCaseSpec
    steps: list[tuple[str, Step]]
    predict_raw: Callable[[Batch], np.ndarray]
    classes: list[str] | None = None
    exact: bool = True
    names: list[str] = field(default_factory=list)

    def predict(self, columns: Columns) -> tuple[np.ndarray, np.ndarray | None]:
        """Predictions (and class probabilities in the spec's order) for cleaned columns.

        ``columns`` holds the spec's input columns, cleaned (missing as None), one list each.
        """
        batch: Batch = columns
        for _, step in self.steps:
            batch = step(batch)
        raw = self.predict_raw(batch)
        if self.classes is None:
            return clip_to_target(np.asarray(raw, dtype=float), self.spec), None
        return ordered_probabilities(raw, self.classes, self.spec)


def compile_model(spec: UseCaseSpec, pipeline: Any) -> CompiledModel:
    """The compiled form of a fitted model pipeline for the spec it was trained on.

    Raises:
        NotCompilable: The spec has a column type, or the pipeline a step, with no compiled
            form; the message names it.
    """
    steps: list[tuple[str, Step]] = [("model_input", _model_input(spec))]
    pipeline_steps = getattr(pipeline, "steps", None)
    if not isinstance(pipeline_steps, list) or not pipeline_steps:
        raise NotCompilable(f"the model is not a scikit-learn Pipeline ({type(pipeline).__name__})")
    for name, step in pipeline_steps[:-1]:
        steps.append((name, _transformer(name, step)))
    name, estimator = pipeline_steps[-1]
    predict_raw, exact = _estimator(name, estimator, spec)
    classes = [str(c) for c in estimator.classes_] if spec.is_classification else None
    return CompiledModel(spec, steps, predict_raw, classes, exact, [n for n, _ in steps])


def _model_input(spec: UseCaseSpec) -> Step:
    """Model input per value, the spec's row-level derived features per row (as ``model_input``)."""
    spec = model_spec(spec)
    derived = row_level(spec)
    computed = {f.name for f in spec.derived}
    forms = []
    for column in spec.input_columns:
        if column.name in computed:
            continue
        form = model_value(column)
        if form is None:
            raise NotCompilable(f"column {column.name!r}: {column.type} has no per-value form")
        forms.append((column.name, form))
    for feature in derived:
        if isinstance(feature, DatePartFeature):
            raise NotCompilable(f"derived feature {feature.name!r}: a date part is not compiled")

    def model_input(columns: Columns) -> Columns:
        values = {name: [form(v) for v in columns[name]] for name, form in forms}
        if derived:
            size = len(next(iter(values.values()), []))
            rows = [{name: values[name][i] for name in values} for i in range(size)]
            for feature in derived:
                values[feature.name] = [derive_value(row, feature) for row in rows]
        size = len(next(iter(values.values()), []))
        # A group statistic's column is filled by its pipeline step; until then it is missing.
        return {
            column.name: values.get(column.name) or [MISSING] * size
            for column in spec.input_columns
        }

    return model_input


def _kind(step: Any) -> str:
    return type(step).__name__


def _library(step: Any, *prefixes: str) -> bool:
    return type(step).__module__.split(".")[0] in prefixes


def _transformer(name: str, step: Any) -> Step:
    """A pipeline transformer's compiled form: its own ``compiled()``, else a known one's."""
    own = getattr(step, "compiled", None)
    if callable(own):
        return own()
    if _kind(step) == "ColumnTransformer" and _library(step, "sklearn"):
        return _column_transformer(step)
    raise NotCompilable(f"pipeline step {name!r} ({_kind(step)}) has no compiled form")


# ---------------------------------------------------------------- scikit-learn encoders


Block = Callable[[Any], np.ndarray]
"""Maps one ColumnTransformer block (float matrix, or lists of text per column) to floats."""


def _column_transformer(transformer: Any) -> Step:
    if getattr(transformer, "sparse_output_", False):
        raise NotCompilable("ColumnTransformer: sparse output")
    blocks: list[tuple[list[str], bool, Block]] = []
    for name, fitted, columns in transformer.transformers_:
        if isinstance(fitted, str) and fitted == "drop":
            continue
        named = isinstance(columns, Sequence | np.ndarray) and not isinstance(columns, str)
        selected = list(columns) if named else None
        if selected is None or not all(isinstance(c, str) for c in selected):
            raise NotCompilable(f"ColumnTransformer block {name!r}: columns not given by name")
        if not selected:
            continue
        if isinstance(fitted, str):
            raise NotCompilable(f"ColumnTransformer block {name!r}: {fitted!r}")
        numeric, block = _block(fitted)
        blocks.append((selected, numeric, block))

    def encode(columns: Columns) -> np.ndarray:
        parts = []
        for names, numeric, block in blocks:
            if numeric:
                matrix = np.array([columns[n] for n in names], dtype="float64").T
                parts.append(block(matrix))
            else:
                parts.append(block([columns[n] for n in names]))
        return np.ascontiguousarray(np.hstack(parts), dtype="float64")

    return encode


def _block(fitted: Any) -> tuple[bool, Block]:
    """``(takes numbers, block)`` of a fitted transformer inside a ColumnTransformer."""
    kind = _kind(fitted)
    if not _library(fitted, "sklearn"):
        raise NotCompilable(f"encoder {kind} has no compiled form")
    if kind == "Pipeline":
        parts = [_block(step) for _, step in fitted.steps]
        if not all(numeric for numeric, _ in parts):
            raise NotCompilable("encoder Pipeline: only numeric steps are compiled")
        chain = [block for _, block in parts]

        def pipeline(matrix: np.ndarray) -> np.ndarray:
            for block in chain:
                matrix = block(matrix)
            return matrix

        return True, pipeline
    if kind == "SimpleImputer":
        return True, _simple_imputer(fitted)
    if kind == "StandardScaler":
        return True, _standard_scaler(fitted)
    if kind == "OneHotEncoder":
        return False, _one_hot(fitted)
    raise NotCompilable(f"encoder {kind} has no compiled form")


def _simple_imputer(imputer: Any) -> Block:
    """Missing numbers take the fitted statistic; features with none are dropped, as fitted."""
    statistics = np.asarray(imputer.statistics_)
    missing_values = imputer.missing_values
    if statistics.dtype.kind != "f" or not (
        isinstance(missing_values, float) and np.isnan(missing_values)
    ):
        raise NotCompilable("SimpleImputer: only numeric statistics and NaN as missing")
    if imputer.strategy == "constant" or getattr(imputer, "keep_empty_features", False):
        keep = np.arange(len(statistics))
    else:
        keep = np.flatnonzero(~np.isnan(statistics))
    kept = statistics[keep]
    indicator = getattr(imputer, "indicator_", None)
    flagged = None if indicator is None else np.asarray(indicator.features_, dtype=int)
    if indicator is not None and indicator.features != "missing-only":
        raise NotCompilable("SimpleImputer: a missing indicator of all features")

    def impute(matrix: np.ndarray) -> np.ndarray:
        missing = np.isnan(matrix)
        values = matrix[:, keep]
        filled = np.where(missing[:, keep], kept, values)
        if flagged is None:
            return filled
        return np.hstack((filled, missing[:, flagged].astype("float64")))

    return impute


def _standard_scaler(scaler: Any) -> Block:
    mean = scaler.mean_ if scaler.with_mean else None
    scale = scaler.scale_ if scaler.with_std else None

    def standardise(matrix: np.ndarray) -> np.ndarray:
        matrix = np.array(matrix, dtype="float64")
        if mean is not None:
            matrix -= mean
        if scale is not None:
            matrix /= scale
        return matrix

    return standardise


def _one_hot(encoder: Any) -> Block:
    """Lookup tables made by the fitted encoder itself: each known category, and an unseen one.

    Each feature's output block is read from one ``transform`` of probe rows (one per known
    category, plus an unseen text), the other features held at a known category; a category
    is then a row of its table, and anything unseen the unseen row (``handle_unknown``).
    """
    if encoder.handle_unknown not in {"ignore", "infrequent_if_exist"}:
        raise NotCompilable(f"OneHotEncoder: handle_unknown={encoder.handle_unknown!r}")
    if getattr(encoder, "sparse_output", False):
        raise NotCompilable("OneHotEncoder: sparse output")
    categories = [list(c) for c in encoder.categories_]
    if not categories or not all(all(isinstance(v, str) for v in c) and c for c in categories):
        raise NotCompilable("OneHotEncoder: only text categories are compiled")
    widths = _one_hot_widths(encoder, categories)
    reference = [c[0] for c in categories]
    unseen = ["\x00unseen:" + "|".join(c) for c in categories]
    probes, spans = [], []
    for index, known in enumerate(categories):
        first = len(probes)
        for value in [*known, unseen[index]]:
            row = list(reference)
            row[index] = value
            probes.append(row)
        spans.append((first, len(probes)))
    names = list(getattr(encoder, "feature_names_in_", []))
    probe_input: Any = np.array(probes, dtype=object)
    if names:  # fitted on a frame: probed with one (at load; batches are plain arrays)
        probe_input = pd.DataFrame(probe_input, columns=names)
    output = np.asarray(encoder.transform(probe_input), dtype="float64")
    if output.shape[1] != sum(widths):
        raise NotCompilable("OneHotEncoder: output width differs from its categories")
    tables: list[tuple[dict[str, int], int, np.ndarray]] = []
    offset = 0
    for index, known in enumerate(categories):
        first, last = spans[index]
        rows = output[first:last, offset : offset + widths[index]]
        tables.append(({value: i for i, value in enumerate(known)}, len(known), rows.copy()))
        offset += widths[index]

    def encode(columns: list[list[str]]) -> np.ndarray:
        parts = []
        for (lookup, unknown, rows), values in zip(tables, columns, strict=True):
            indexes = np.fromiter((lookup.get(v, unknown) for v in values), dtype=np.intp)
            parts.append(rows[indexes])
        return np.hstack(parts)

    return encode


def _one_hot_widths(encoder: Any, categories: list[list[str]]) -> list[int]:
    """Output columns per feature: its categories, infrequent ones sharing one column."""
    if getattr(encoder, "drop_idx_", None) is not None:
        raise NotCompilable("OneHotEncoder: drop")
    infrequent = getattr(encoder, "infrequent_categories_", None) or [None] * len(categories)
    widths = []
    for known, rare in zip(categories, infrequent, strict=True):
        rare_count = 0 if rare is None else len(rare)
        widths.append(len(known) - rare_count + (1 if rare_count else 0))
    return widths


# ---------------------------------------------------------------- estimators

SKLEARN_TREES = {
    "HistGradientBoostingRegressor",
    "HistGradientBoostingClassifier",
    "RandomForestRegressor",
    "RandomForestClassifier",
}
SKLEARN_LINEAR = {"Ridge", "LogisticRegression"}
CATBOOST = {"CatBoostRegressor", "CatBoostClassifier"}


def _estimator(name: str, estimator: Any, spec: UseCaseSpec) -> tuple[Step, bool]:
    """The estimator's own prediction on arranged arrays, and whether it is bitwise exact."""
    kind = _kind(estimator)
    proba = spec.is_classification
    if kind in CATBOOST and _library(estimator, "catboost"):
        return _catboost(estimator, proba), True
    if kind in SKLEARN_TREES | SKLEARN_LINEAR and _library(estimator, "sklearn"):
        if kind.startswith("RandomForest"):
            # One thread: trees summed in their own order (joblib's threads add in any order).
            estimator = copy.copy(estimator)
            estimator.n_jobs = 1
        method = estimator.predict_proba if proba else estimator.predict
        return method, kind not in SKLEARN_LINEAR
    raise NotCompilable(f"pipeline step {name!r} ({kind}) has no compiled form")


def _catboost(model: Any, proba: bool) -> Step:
    from catboost import Pool

    names = list(model.feature_names_)
    categorical = sorted(int(i) for i in model.get_cat_feature_indices())
    method = model.predict_proba if proba else model.predict

    def predict(columns: Columns) -> np.ndarray:
        size = len(columns[names[0]])
        rows = np.empty((size, len(names)), dtype=object)
        for index, name in enumerate(names):
            rows[:, index] = columns[name]
        return method(Pool(rows, cat_features=categorical), thread_count=1)

    return predict
