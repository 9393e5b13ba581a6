"""The compiled per-record executor answers exactly as the vectorised one.

For every bundled use case's spec (each segment of ``mushroom``; ``m5_sales`` is a forecast and
always takes the vectorised path), and for a variant of ``bigmart_sales`` whose rules use every
rule type, one pipeline of each of its model families is fitted on generated rows. Hypothesis
then generates requests of raw records (dirty spellings, sentinels, nulls, out-of-range values,
wrong types, unseen groups, numeric text, int64 edges) and both executors score them:

- the same cleaned values (bitwise for numbers) and the same rows kept;
- the same problems (field, message, order), so the same 422s;
- the same predictions and probabilities: bitwise for tree models (CatBoost,
  HistGradientBoosting, random forest), within 1e-12 relative for linear ones (ridge, logistic
  regression: BLAS may round a sum differently for another batch shape);
- the same prediction log rows.

A runtime-level run adds extra and missing fields, and routing among segments: the answers
(status and body) of a runtime that uses the compiled executor and of one that never does agree.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import math
import struct
import typing
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlops_assets.environment import ServingOptions
from mlops_assets.features.cleaning import RULES, clean_frame
from mlops_assets.features.pipeline import model_input
from mlops_assets.prediction_log import ScoredBatch, log_frame
from mlops_assets.serving.compiled import CompiledScorer, outcome_difference, scorer_for
from mlops_assets.serving.runtime import ServingRuntime, SlotRuntime
from mlops_assets.serving.scoring import Accepted, Rejected, Scorer
from mlops_assets.specs import UseCaseSpec, use_case_specs
from mlops_assets.specs.model import CleaningRule, ColumnSpec
from mlops_assets.training.families import build_pipeline, fit_pipeline

SMALL = {  # families fitted in a second or two; their compiled form is what is tested
    "catboost": {"iterations": 40, "depth": 4},
    "hist_gradient_boosting": {"max_iter": 25, "early_stopping": False},
    "random_forest": {"n_estimators": 15, "max_depth": 6},
    "ridge": {"alpha": 1.0},
    "logistic_regression": {"C": 1.0},
}
LINEAR = {"ridge", "logistic_regression"}
INT64_EDGES = [
    2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**53 + 1, 9.223372036854776e18, 1e19,
    "9223372036854775807", "9223372036854775808", "-9223372036854775809", "1e19",
]  # fmt: skip


def every_rule_variant(spec: UseCaseSpec) -> UseCaseSpec:
    """bigmart_sales with a rule of every type on more columns: clips (an integer column's, one
    with its bounds the wrong way round), a text sentinel, and a spelling rule on a number."""
    document = spec.model_dump()
    rules = {
        "Item_MRP": [{"rule": "clip", "min": 20.0, "max": 900.0}],
        "Item_Weight": [{"rule": "clip", "min": 21.5, "max": 4.25}],
        "Outlet_Establishment_Year": [{"rule": "clip", "min": 1950.5, "max": 2050.5}],
        "Outlet_Size": [{"rule": "strip"}, {"rule": "null_if", "values": ["Unknown", "?", 0]}],
        "Item_Visibility": [
            {"rule": "strip"},
            {"rule": "map_values", "mapping": {"none": "0", "tiny": "0.001"}},
            {"rule": "null_if", "values": [0]},
        ],
    }
    for column in document["features"]:
        column["cleaning"] = rules.get(column["name"], column["cleaning"])
    document["name"] = "bigmart_rules"
    return UseCaseSpec.model_validate(document)


def views() -> dict[str, tuple[UseCaseSpec, str]]:
    """Every compiled spec view, by test id, with the generator of its rows."""
    specs = use_case_specs()
    found = {"bigmart_rules": (every_rule_variant(specs["bigmart_sales"]), "bigmart_sales")}
    for name, spec in specs.items():
        if spec.task == "forecast":
            continue
        for view in spec.segment_specs():
            found[f"{name}/{view.segment}" if view.segment else name] = (view, spec.generator)
    return found


VIEWS = views()


def rule_types(spec: UseCaseSpec) -> set[type]:
    return {type(rule) for column in spec.input_columns for rule in column.cleaning}


def test_every_rule_type_has_both_forms_and_is_exercised_here() -> None:
    """A new rule type needs its forms in ``RULES`` and a spec of this module that uses it."""
    declared = set(typing.get_args(typing.get_args(CleaningRule)[0]))
    assert declared == set(RULES)
    assert all(callable(forms.value) for forms in RULES.values())
    exercised = set().union(*(rule_types(view) for view, _ in VIEWS.values()))
    assert exercised == declared


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Any:
    """Native thread pools at one thread, as the service runs small batches (and faster here)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def fitted() -> dict[str, tuple[UseCaseSpec, list[tuple[str, Any]], pd.DataFrame]]:
    """Per view: the spec, one fitted pipeline per model family, and the training rows."""
    from mlops_assets.generators import get_generator

    result = {}
    for key, (view, generator) in VIEWS.items():
        rows = get_generator(generator).generate(400, dt.date(2025, 5, 1), seed=17)
        cleaned, _ = clean_frame(rows, view)
        cleaned = cleaned[cleaned[view.target.name].notna()].reset_index(drop=True)
        pipelines = []
        for family in [m.family for m in view.models]:
            pipeline = build_pipeline(view, family, SMALL[family], seed=3)
            if family == "random_forest":
                pipeline.named_steps["model"].n_jobs = 1  # its own sum order, every time
            fit_pipeline(pipeline, model_input(cleaned, view), cleaned[view.target.name], 10)
            pipelines.append((family, pipeline))
        result[key] = (view, pipelines, cleaned)
    return result


# ---------------------------------------------------------------- generated records


def weighted(valid: st.SearchStrategy, dirty: st.SearchStrategy, dirty_percent: int):
    return st.integers(0, 99).flatmap(lambda n: dirty if n < dirty_percent else valid)


WRONG_TYPES = st.one_of(
    st.booleans(),
    st.lists(st.integers(0, 3), max_size=2),
    st.dictionaries(st.sampled_from(["a", "b"]), st.integers(0, 3), max_size=1),
)
ANY_JSON_NUMBER = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**70), 2**70),
    st.sampled_from(INT64_EDGES),
)


def number_values(column: ColumnSpec) -> tuple[st.SearchStrategy, st.SearchStrategy]:
    low = -1e6 if column.min is None else column.min
    high = 1e6 if column.max is None else column.max
    in_range = st.floats(low, high, allow_nan=False)
    if column.type == "integer":
        in_range = st.integers(math.ceil(low), math.floor(high))
    sentinels = [v for r in column.cleaning for v in (getattr(r, "values", None) or [])]
    spellings = [k for r in column.cleaning for k in (getattr(r, "mapping", None) or {})]
    valid = st.one_of(
        in_range,
        in_range.map(float),
        in_range.map(lambda x: f" {x!r} "),
        in_range.map(lambda x: f"{float(x):.17g}"),  # 17 digits: where pd.to_numeric rounds off
        st.sampled_from([low, high, str(low), f"{high}"]),
        *(
            [st.sampled_from(sentinels + [str(v) for v in sentinels])]
            if sentinels and column.nullable
            else []
        ),
        *([st.sampled_from(spellings + [s.upper() for s in spellings])] if spellings else []),
        *([st.none()] if column.nullable else []),
    )
    dirty = st.one_of(
        st.none(),
        ANY_JSON_NUMBER,
        st.floats(high, high + abs(high) * 9 + 10),  # out of range (or clipped into it)
        st.floats(low - abs(low) * 9 - 10, low),
        st.sampled_from(["-0", "-0.0", "1e999", "inf", "-Infinity", "nan", " ", "", "12x", "1_0"]),
        st.sampled_from(INT64_EDGES).map(str),
        st.text(max_size=5),
        WRONG_TYPES,
    )
    return valid, dirty


def text_values(column: ColumnSpec, seen: list[str]) -> tuple[st.SearchStrategy, st.SearchStrategy]:
    categories = list(column.categories or []) + seen
    spellings = [k for r in column.cleaning for k in (getattr(r, "mapping", None) or {})]
    sentinels = [str(v) for r in column.cleaning for v in (getattr(r, "values", None) or [])]
    known = st.sampled_from(categories) if categories else st.text(min_size=1, max_size=6)
    valid = st.one_of(
        known,
        known.map(lambda v: f"  {v} "),
        *([st.sampled_from(spellings).map(lambda s: f" {s.upper()}")] if spellings else []),
        *([st.sampled_from(sentinels)] if sentinels else []),
        *([st.text(min_size=1, max_size=6)] if not column.closed else []),
        *([st.none()] if column.nullable else []),
    )
    dirty = st.one_of(
        st.none(),
        st.sampled_from(["", "   ", "\t", "unseen-value", "Spaceport"]),
        st.text(max_size=6),
        ANY_JSON_NUMBER,
        WRONG_TYPES,
    )
    return valid, dirty


def record_strategy(view: UseCaseSpec, cleaned: pd.DataFrame) -> st.SearchStrategy:
    """Records of all fields, most values valid (so most requests are scored)."""
    fields = {}
    for column in view.input_columns:
        if column.type == "categorical":
            seen = (
                sorted(cleaned[column.name].dropna().astype(str).unique())[:30]
                if not column.categories
                else []
            )
            valid, dirty = text_values(column, seen)
        else:
            valid, dirty = number_values(column)
        fields[column.name] = (valid, dirty)
    clean = st.fixed_dictionaries({name: valid for name, (valid, _) in fields.items()})
    mixed = st.fixed_dictionaries(
        {name: weighted(valid, dirty, 6) for name, (valid, dirty) in fields.items()}
    )
    return st.one_of(clean, mixed)


def requests_strategy(view: UseCaseSpec, cleaned: pd.DataFrame) -> st.SearchStrategy:
    records = st.lists(record_strategy(view, cleaned), min_size=1, max_size=4)
    return st.lists(records, min_size=1, max_size=4)


# ---------------------------------------------------------------- comparisons


def same_value(left: Any, right: Any) -> bool:
    """Equal and of one kind; numbers bitwise (-0.0 is not 0.0)."""
    if isinstance(left, float) or isinstance(right, float):
        return (
            isinstance(left, float)
            and isinstance(right, float)
            and struct.pack("<d", left) == struct.pack("<d", right)
        )
    return type(left) is type(right) and left == right


def vectorised_cleaned(frame: pd.DataFrame, view: UseCaseSpec) -> dict[int, dict[str, Any]]:
    rows = {}
    for row, values in zip(frame.index.tolist(), frame.to_dict("records"), strict=True):
        rows[int(row)] = {
            c.name: None if pd.isna(values[c.name]) else _python(values[c.name])
            for c in view.input_columns
        }
    return rows


def _python(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def as_columns(requests: list[list[dict[str, Any]]], view: UseCaseSpec) -> list[dict]:
    names = [c.name for c in view.input_columns]
    return [{name: [r[name] for r in records] for name in names} for records in requests]


def assert_same_log(want: list[ScoredBatch], got: list[ScoredBatch], view, exact: bool) -> None:
    assert len(want) == len(got)
    if not want:
        return
    left = log_frame(want, view).drop(columns=["logged_at"])
    right = log_frame(got, view).drop(columns=["logged_at"])
    pd.testing.assert_frame_equal(left, right, check_exact=exact, rtol=1e-12, atol=0)


@pytest.mark.parametrize("key", list(VIEWS))
def test_both_executors_clean_check_and_predict_alike(fitted, key: str) -> None:
    view, pipelines, cleaned = fitted[key]
    scorers = []
    for family, pipeline in pipelines:
        logs: tuple[list, list] = ([], [])
        vectorised = Scorer(view, pipeline, view.name, "1", on_scored=logs[0].append)
        compiled = CompiledScorer(view, pipeline, view.name, "1", on_scored=logs[1].append)
        scorers.append((family, vectorised, compiled, logs))

    @settings(
        max_examples=30,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(requests_strategy(view, cleaned))
    def check(requests: list[list[dict[str, Any]]]) -> None:
        columns = as_columns(requests, view)
        merged = {n: [v for c in columns for v in c[n]] for n in columns[0]}
        _, vectorised, compiled, _ = scorers[0]
        frame, want = vectorised._clean_and_check(merged)
        values, kept, got = compiled._clean_and_check(merged)
        assert sorted(got) == sorted(want)
        rows = vectorised_cleaned(frame, view)
        assert sorted(rows) == [row for row, keep in enumerate(kept) if keep]
        for row, expected in rows.items():
            for name, value in expected.items():
                assert same_value(value, values[name][row]), (row, name, value, values[name][row])
        ids = [f"r{i}" for i in range(len(columns))]
        for family, vectorised, compiled, logs in scorers:
            exact = family not in LINEAR
            logs[0].clear()
            logs[1].clear()
            answers = zip(
                vectorised.score_requests(columns, ids),
                compiled.score_requests(columns, ids),
                strict=True,
            )
            for index, (expected, actual) in enumerate(answers):
                difference = outcome_difference(expected, actual, exact=exact)
                assert not difference, (family, index, difference)
            assert_same_log(logs[0], logs[1], view, exact)

    check()


# ---------------------------------------------------------------- runtimes, end to end


def runtime(view_key: str, fitted, compiled: bool) -> ServingRuntime:
    """A runtime of the use case behind ``view_key``, with its CatBoost pipeline per slot."""
    name = view_key.split("/")[0]
    spec = use_case_specs()[name]
    options = ServingOptions(parallel_records=1000 if compiled else 0)
    slots = {}
    for view in spec.segment_specs():
        key = f"{name}/{view.segment}" if view.segment else name
        _, pipelines, _ = fitted[key]
        pipeline = dict(pipelines)["catboost"]
        model = view.registered_model_name()
        slots[view.segment] = SlotRuntime(view, pipeline, model, "1", options)
        assert slots[view.segment].scorer.compiled is not None  # used only if compiled
    return ServingRuntime(spec, slots)


@pytest.mark.parametrize("use_case", ["bigmart_sales", "mushroom"])
def test_runtimes_answer_alike_with_extra_and_missing_fields(fitted, use_case: str) -> None:
    spec = use_case_specs()[use_case]
    fast, slow = runtime(use_case, fitted, True), runtime(use_case, fitted, False)
    keys = [k for k in VIEWS if k.split("/")[0] == use_case]
    records = st.one_of(*(record_strategy(fitted[k][0], fitted[k][2]) for k in keys))
    names = [c.name for c in spec.input_columns]
    changed = st.builds(
        lambda record, drop, extra: {
            **{k: v for k, v in record.items() if k not in drop},
            **extra,
        },
        records,
        st.sets(st.sampled_from(names), max_size=2),
        st.dictionaries(
            st.sampled_from(["Extra", names[0].lower(), ""]), st.integers(), max_size=1
        ),
    )
    bodies = st.lists(st.one_of(records, records, changed), min_size=1, max_size=4)

    async def answer(runtime: ServingRuntime, body: Any) -> tuple[int, dict]:
        found = await runtime.answer(body, "same-id")
        return found.status, json.loads(found.body)

    @settings(
        max_examples=50,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(bodies)
    def check(body: list[dict[str, Any]]) -> None:
        left = asyncio.run(answer(slow, body))
        right = asyncio.run(answer(fast, body))
        assert left == right

    try:
        check()
    finally:
        fast.close()
        slow.close()


# ---------------------------------------------------------------- falling back, loudly


def test_a_step_without_a_compiled_form_keeps_the_model_vectorised(
    fitted, caplog: pytest.LogCaptureFixture
) -> None:
    """An unknown pipeline step fails the compilation at load, never the answers."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    view, pipelines, cleaned = fitted["bigmart_sales"]
    fitted_pipeline = dict(pipelines)["catboost"]
    steps = list(fitted_pipeline.steps)
    steps.insert(1, ("mystery", FunctionTransformer(lambda frame: frame)))
    pipeline = Pipeline(steps)
    with caplog.at_level(logging.WARNING):
        scorer = scorer_for(view, pipeline, view.name, "9")
    assert scorer.compiled is None
    assert "pipeline step 'mystery' (FunctionTransformer) has no compiled form" in scorer.reason
    assert "every batch takes the vectorised path" in caplog.text
    [outcome] = scorer.score_requests([model_columns(view, cleaned.head(3))], ["x"])
    assert isinstance(outcome, Accepted) and len(outcome.predictions) == 3


def model_columns(view: UseCaseSpec, rows: pd.DataFrame) -> dict[str, list[Any]]:
    """Cleaned rows sent back as a request's columns (valid by construction)."""
    return {
        c.name: [None if pd.isna(v) else _python(v) for v in rows[c.name].tolist()]
        for c in view.input_columns
    }


def test_a_compiled_form_that_differs_on_probes_is_not_used(fitted, monkeypatch) -> None:
    """The check at load scores probe records both ways: a divergence keeps it vectorised."""
    from mlops_assets.training import compiled as compiled_module

    view, pipelines, cleaned = fitted["bigmart_sales"]
    pipeline = dict(pipelines)["catboost"]
    original = compiled_module.CompiledModel.predict

    def off_by_a_bit(self, columns):
        predictions, probabilities = original(self, columns)
        return np.nextafter(predictions, np.inf), probabilities

    monkeypatch.setattr(compiled_module.CompiledModel, "predict", off_by_a_bit)
    scorer = scorer_for(view, pipeline, view.name, "2")
    assert scorer.compiled is None and scorer.reason.startswith("probe record")
    monkeypatch.undo()
    assert scorer_for(view, pipeline, view.name, "2").compiled is not None


def test_forecasts_and_non_pipelines_take_the_vectorised_path(fitted) -> None:
    m5 = use_case_specs()["m5_sales"]
    assert "stored history" in scorer_for(m5, object(), "m5_sales", "1").reason
    view, _, _ = fitted["bigmart_sales"]
    assert "not a scikit-learn Pipeline" in scorer_for(view, object(), "x", "1").reason


def test_a_swapped_model_is_compiled_too(fitted) -> None:
    view, pipelines, cleaned = fitted["loan_approval"]
    by_family = dict(pipelines)
    slot = SlotRuntime(view, by_family["catboost"], view.name, "1", ServingOptions())
    assert slot.scorer.compiled is not None
    slot.swap_model(by_family["hist_gradient_boosting"], view.name, "2")
    assert slot.scorer.compiled is not None and slot.scorer.model_version == "2"
    columns = model_columns(view, cleaned.head(5))
    [outcome] = slot.scorer.score_requests([columns], ["x"])
    [expected] = slot.scorer.vectorised.score_requests([columns], ["x"])
    assert isinstance(outcome, Accepted) and outcome == expected
    slot.close()


def test_one_bad_request_never_makes_a_neighbours_value_unreadable(fitted) -> None:
    """A zero visibility (a null_if sentinel) stays a sentinel whatever else its batch holds.

    The safety net used to look at every value its column lost in the batch once any value of
    that column was unreadable; a float 0.0 (not spelled like the sentinel ``0``) then made a
    good request fail with ``cannot be read: 0.0`` beside a bad one.
    """
    view, pipelines, cleaned = fitted["bigmart_sales"]
    good = model_columns(view, cleaned.head(1)) | {"Item_Visibility": [0.0]}
    bad = good | {"Item_Visibility": ["0.0x"]}
    pipeline = dict(pipelines)["catboost"]
    for scorer in (Scorer(view, pipeline, "m", "1"), CompiledScorer(view, pipeline, "m", "1")):
        outcomes = scorer.score_requests([bad, good], ["bad", "good"])
        assert isinstance(outcomes[0], Rejected) and isinstance(outcomes[1], Accepted)
