"""The compiled form of a fitted pipeline: every step type has one, an unknown one fails loudly.

Equality with the vectorised path is the property test of ``serving/test_compiled.py``; here,
that every model family and every transformer of ours compiles, and what does not.
"""

from __future__ import annotations

import datetime as dt

import pytest

from mlops_assets.features import pipeline as preprocessing
from mlops_assets.features.cleaning import clean_frame
from mlops_assets.features.pipeline import model_input
from mlops_assets.specs import use_case_specs
from mlops_assets.specs.model import CLASSIFICATION_FAMILIES, REGRESSION_FAMILIES
from mlops_assets.training.compiled import NotCompilable, compile_model
from mlops_assets.training.families import build_pipeline

TINY = {
    "catboost": {"iterations": 5},
    "hist_gradient_boosting": {"max_iter": 5, "early_stopping": False},
    "random_forest": {"n_estimators": 3},
    "ridge": {},
    "logistic_regression": {},
}
TINY_LINEAR = {"ridge", "logistic_regression"}


def test_every_transformer_of_ours_has_a_compiled_form() -> None:
    """A new transformer of ``features/pipeline.py`` needs ``compiled`` beside ``transform``."""
    for name, cls in preprocessing.transformer_classes().items():
        assert name in preprocessing.TRANSFORMERS
        assert callable(getattr(cls, "compiled", None)), name


@pytest.mark.parametrize(
    ("use_case", "family"),
    [("bigmart_sales", f) for f in sorted(REGRESSION_FAMILIES)]
    + [("loan_approval", f) for f in sorted(CLASSIFICATION_FAMILIES)],
)
def test_every_model_family_compiles(use_case: str, family: str) -> None:
    from mlops_assets.generators import get_generator

    spec = use_case_specs()[use_case]
    rows, _ = clean_frame(get_generator(use_case).generate(120, dt.date(2025, 1, 1), seed=1), spec)
    pipeline = build_pipeline(spec, family, TINY[family])
    pipeline.fit(model_input(rows, spec), rows[spec.target.name])
    model = compile_model(spec, pipeline)
    assert model.names[0] == "model_input" and model.exact is (family not in TINY_LINEAR)


def test_an_unknown_step_or_estimator_is_named() -> None:
    from sklearn.dummy import DummyRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    spec = use_case_specs()["bigmart_sales"]
    with pytest.raises(NotCompilable, match=r"'scale' \(FunctionTransformer\)"):
        compile_model(spec, Pipeline([("scale", FunctionTransformer()), ("m", DummyRegressor())]))
    with pytest.raises(NotCompilable, match=r"'model' \(DummyRegressor\)"):
        compile_model(spec, Pipeline([("model", DummyRegressor())]))
    with pytest.raises(NotCompilable, match="date has no per-value form"):
        compile_model(use_case_specs()["m5_sales"], Pipeline([("model", DummyRegressor())]))
