"""The per-record executor: small batches scored over plain lists, beside the vectorised one.

The vectorised :class:`~mlops_assets.serving.scoring.Scorer` pays pandas' and scikit-learn's
fixed cost per call (about 20 ms here) whatever the batch size, so a request of one record is
all fixed cost. :class:`CompiledScorer` answers the same requests with the same definitions,
compiled once per model from the spec and the fitted pipeline:

- the request checks are the shared ones (:func:`~mlops_assets.serving.records.type_problems`);
- each column is cleaned by :func:`~mlops_assets.features.cleaning.value_cleaner`, generated
  from the spec's rules and type by the same rule and type forms ``clean_frame`` applies;
- rows are kept or refused as ``clean_frame`` keeps them, the domain checks are
  :func:`~mlops_assets.features.validation.value_check` (the messages of ``validate_frame``),
  and the safety net for unreadable values is the scorer's own (``unexplained_message``);
- the model is :func:`~mlops_assets.training.compiled.compile_model` of the fitted pipeline.

:func:`scorer_for` builds both and a :class:`DualScorer` choosing per batch: batches under
``small_records`` records take the compiled executor, larger ones (and ``mlops predict``,
ingestion) the vectorised one. Building the compiled executor fails loudly (a spec column type,
a pipeline step or an estimator it has no form for, or a difference from the vectorised path on
probe records checked at load): that model is then served by the vectorised path only, and the
log says why. Forecasts read lags from stored history (a date column, pandas' date parser):
they always take the vectorised path.
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from mlops_assets.features.cleaning import value_cleaner
from mlops_assets.features.history import StoredHistory
from mlops_assets.features.validation import value_check
from mlops_assets.prediction_log import ScoredBatch
from mlops_assets.serving.records import RequestProblem, example_record, problem, type_problems
from mlops_assets.serving.scoring import (
    Accepted,
    FrameScore,
    Rejected,
    Scorer,
    concatenate,
    is_blank,
    null_if_texts,
    rejections,
    request_starts,
    unexplained_message,
)
from mlops_assets.specs.model import ColumnSpec, UseCaseSpec
from mlops_assets.training.compiled import CompiledModel, NotCompilable, compile_model

logger = logging.getLogger("bentoml").getChild("mlops.compiled")

Outcome = Accepted | Rejected
NO_USABLE_VALUE = "has no usable value (all missing or invalid)"


class CompiledScorer:
    """The spec and a fitted model compiled into plain-Python steps for small batches.

    Same interface and answers as :class:`~mlops_assets.serving.scoring.Scorer` (for specs and
    pipelines it can compile).

    Raises:
        NotCompilable: A column type, pipeline step or estimator has no compiled form.
    """

    def __init__(
        self,
        spec: UseCaseSpec,
        pipeline: Any,
        model_name: str,
        model_version: str,
        on_scored: Callable[[ScoredBatch], None] | None = None,
        problem_limit: int = 20,
    ) -> None:
        if spec.task == "forecast":
            raise NotCompilable("a forecast's lags are read from stored history (vectorised)")
        self.spec = spec
        self.pipeline = pipeline
        self.model_name = model_name
        self.model_version = model_version
        self.on_scored = on_scored
        self.problem_limit = problem_limit
        self.model: CompiledModel = compile_model(spec, pipeline)
        self.names = [c.name for c in spec.input_columns]
        self._columns: list[tuple[int, ColumnSpec, Any, Any, set[str]]] = []
        for order, column in enumerate(spec.input_columns):
            try:
                clean = value_cleaner(column)
            except NotImplementedError as error:
                raise NotCompilable(str(error)) from error
            sentinels = null_if_texts(column)
            self._columns.append((order, column, clean, value_check(column), sentinels))
        self._required = [c for c in spec.id_columns if not c.nullable]
        self._classes = list(spec.target.classes or []) if spec.is_classification else None

    # ------------------------------------------------------------ the Scorer interface

    def score_requests(
        self, requests: Sequence[Mapping[str, list[Any]]], request_ids: Sequence[str]
    ) -> list[Outcome]:
        """Score several requests in one pass; each gets its predictions or its own problems."""
        starts = request_starts(requests, self.names[0])
        cleaned, kept, problems = self._clean_and_check(concatenate(requests, self.names))
        outcomes: dict[int, Outcome] = dict(rejections(problems, starts, self.problem_limit))
        accepted = [i for i in range(len(requests)) if i not in outcomes]
        if accepted:
            outcomes.update(self._predict_accepted(cleaned, accepted, starts, request_ids))
        return [outcomes[i] for i in range(len(requests))]

    def check(self, columns: Mapping[str, list[Any]]) -> list[RequestProblem]:
        """Every problem of a request's records, without scoring (nothing is logged)."""
        return self._clean_and_check(columns)[2]

    # ------------------------------------------------------------ steps

    def _clean_and_check(
        self, columns: Mapping[str, list[Any]]
    ) -> tuple[dict[str, list[Any]], list[bool], list[RequestProblem]]:
        """Cleaned columns (missing as None), which rows ``clean_frame`` keeps, every problem."""
        problems = type_problems(columns, self.spec)
        cleaned: dict[str, list[Any]] = {}
        unreadable: dict[str, list[int]] = {}
        for _, column, clean, _, _ in self._columns:
            values, bad = [], []
            for row, raw in enumerate(columns[column.name]):
                value, invalid = clean(raw)
                values.append(value)
                if invalid:
                    bad.append(row)
            cleaned[column.name] = values
            if bad:
                unreadable[column.name] = bad
        size = len(columns[self.names[0]])
        kept = [
            any(cleaned[name][row] is not None for name in self.names)
            and all(cleaned[c.name][row] is not None for c in self._required)
            for row in range(size)
        ]
        for row in range(size):
            if not kept[row]:
                problems.extend(self._dropped_row_problems(columns, row))
        counted = {p.location for p in problems}
        for order, column, _, _, sentinels in self._columns:
            raw = columns[column.name]
            for row in unreadable.get(column.name, ()):
                if kept[row]:
                    message = unexplained_message(row, column.name, raw[row], counted, sentinels)
                    if message:
                        problems.append(problem(row, column, message, order))
        seen = {p.location for p in problems}
        for order, column, _, check, _ in self._columns:
            values = cleaned[column.name]
            for row in range(size):
                if kept[row]:
                    message = check(values[row])
                    if message:
                        found = problem(row, column.name, message, order)
                        if found.location not in seen:
                            problems.append(found)
        return cleaned, kept, problems

    def _dropped_row_problems(self, columns: Mapping[str, list[Any]], row: int) -> list[Any]:
        """Why ``clean_frame`` drops a row: a required id is missing, or nothing is usable."""
        missing = [c for c in self._required if is_blank(columns[c.name][row])]
        if missing:
            return [problem(row, c, "is required") for c in missing]
        return [problem(row, None, NO_USABLE_VALUE)]

    def _predict_accepted(
        self,
        cleaned: dict[str, list[Any]],
        accepted: list[int],
        starts: Sequence[int],
        request_ids: Sequence[str],
    ) -> dict[int, Accepted]:
        ranges = [(starts[i], starts[i + 1]) for i in accepted]
        if len(ranges) == len(starts) - 1:
            subset = cleaned
        else:
            rows = [row for a, b in ranges for row in range(a, b)]
            subset = {name: [values[r] for r in rows] for name, values in cleaned.items()}
        predictions, probabilities = self.model.predict(subset)
        answers = predictions.tolist()
        shares = None if probabilities is None else probabilities.tolist()
        outcomes: dict[int, Accepted] = {}
        offset = 0
        for index, (a, b) in zip(accepted, ranges, strict=True):
            part = slice(offset, offset + b - a)
            outcomes[index] = Accepted(
                predictions=answers[part],
                ids={name: subset[name][part] for name in self.spec.id_names},
                probabilities=None
                if shares is None
                else [dict(zip(self._classes or [], row, strict=True)) for row in shares[part]],
                model_name=self.model_name,
                model_version=self.model_version,
            )
            offset += b - a
        if self.on_scored is not None:
            self.on_scored(
                ScoredBatch(
                    request_ids=[request_ids[i] for i in accepted],
                    row_counts=[b - a for a, b in ranges],
                    cleaned=subset,
                    predictions=predictions,
                    model_name=self.model_name,
                    model_version=self.model_version,
                    probabilities=probabilities,
                )
            )
        return outcomes


class DualScorer:
    """The vectorised scorer, and the compiled one for batches under ``small_records`` records.

    Attributes:
        reason: Why there is no compiled executor for this model (``None`` when there is).
    """

    def __init__(
        self, vectorised: Scorer, compiled: CompiledScorer | None, small_records: int, reason: str
    ) -> None:
        self.vectorised = vectorised
        self.compiled = compiled
        self.small_records = small_records
        self.reason = reason if compiled is None else None
        self.spec = vectorised.spec
        self.pipeline = vectorised.pipeline
        self.model_name = vectorised.model_name
        self.model_version = vectorised.model_version
        self.on_scored = vectorised.on_scored

    def _chosen(self, size: int) -> Scorer | CompiledScorer:
        if self.compiled is not None and size < self.small_records:
            return self.compiled
        return self.vectorised

    def score_requests(
        self, requests: Sequence[Mapping[str, list[Any]]], request_ids: Sequence[str]
    ) -> list[Outcome]:
        """Score the batch with the executor for its size.

        A large batch is scored with the cyclic garbage collector paused: it allocates
        hundreds of thousands of short-lived objects, all freed by reference counting, and
        the collector's passes over them were a tenth of a 10,000-record request here.
        """
        first = self.spec.input_columns[0].name
        size = sum(len(request[first]) for request in requests)
        chosen = self._chosen(size)
        if chosen is self.compiled:
            return chosen.score_requests(requests, request_ids)
        with collector_paused():
            return chosen.score_requests(requests, request_ids)

    def check(self, columns: Mapping[str, list[Any]]) -> list[RequestProblem]:
        """Every problem of a request's records, by the executor for its size."""
        size = len(columns[self.spec.input_columns[0].name])
        return self._chosen(size).check(columns)

    def score_frame(self, raw: Any) -> FrameScore:
        """A file's rows: always the vectorised path."""
        return self.vectorised.score_frame(raw)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off for the block (as it was before, after it)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def scorer_for(
    spec: UseCaseSpec,
    pipeline: Any,
    model_name: str,
    model_version: str,
    on_scored: Callable[[ScoredBatch], None] | None = None,
    history: StoredHistory | None = None,
    small_records: int = 1000,
) -> DualScorer:
    """Both executors of a model; the compiled one only if it builds and agrees on probes.

    A model the compiled executor cannot take is served by the vectorised path; the reason is
    logged once, at load (a promotion the follower swaps in is compiled again).
    """
    vectorised = Scorer(spec, pipeline, model_name, model_version, on_scored, history=history)
    compiled: CompiledScorer | None = None
    reason = ""
    try:
        compiled = CompiledScorer(spec, pipeline, model_name, model_version)
        probe_compiled(Scorer(spec, pipeline, model_name, model_version), compiled)
        compiled.on_scored = on_scored
    except NotCompilable as error:
        compiled, reason = None, str(error)
        logger.warning(
            "%s v%s: every batch takes the vectorised path (no compiled executor: %s)",
            model_name,
            model_version,
            reason,
        )
    return DualScorer(vectorised, compiled, small_records, reason)


# ---------------------------------------------------------------- the check at load


def probe_records(spec: UseCaseSpec) -> list[dict[str, Any]]:
    """Records exercising every column: valid ones, then one bad field each.

    Valid records combine each column's accepted candidates (categories, mapped spellings,
    padded text, unseen values of open columns, bounds, numeric text, sentinels, nulls),
    record ``i`` taking each column's ``i``-th; then the example record with one field made
    bad at a time (outside a closed set or a range, of the wrong type, missing if required).
    """
    example = example_record(spec)
    good = {c.name: _accepted(c, example[c.name]) for c in spec.input_columns}
    count = max(len(v) for v in good.values())
    records = [{name: v[i % len(v)] for name, v in good.items()} for i in range(count)]
    for column in spec.input_columns:
        for bad in _refused(column):
            records.append({**example, column.name: bad})
    return records


def _accepted(column: ColumnSpec, example: Any) -> list[Any]:
    values: list[Any] = [example]
    if column.type == "categorical":
        categories = list(column.categories or [])
        values += categories + [f" {v} " for v in categories[:2]]
        for rule in column.cleaning:
            mapping = getattr(rule, "mapping", None) or {}
            values += [k for k, v in mapping.items() if v in categories or not column.closed]
        if not column.closed:
            values += ["\x00unseen", f" {example} "]
    else:
        low, high = column.min, column.max
        for bound in (low, high):
            if bound is not None:
                values += [bound, str(bound)]
        values.append(str(example))
        if column.nullable:
            for rule in column.cleaning:
                values += list(getattr(rule, "values", None) or [])
    if column.nullable:
        values.append(None)
    return values


def _refused(column: ColumnSpec) -> list[Any]:
    values: list[Any] = [] if column.nullable else [None]
    if column.type == "categorical":
        values.append(3)
        if column.closed and column.categories:
            values.append("\x00refused")
    else:
        values += ["abc", True]
        if column.min is not None:
            values.append(column.min - 1)
        if column.max is not None:
            values.append(column.max + 1)
    return values


def probe_compiled(vectorised: Scorer, compiled: CompiledScorer) -> None:
    """Score probe records with both executors; any difference makes the model not compilable.

    Bitwise for models the compiled executor calls exactly as the vectorised one (tree
    models), within 1e-12 relative otherwise (BLAS sums).

    Raises:
        NotCompilable: The executors differ on a probe record, or the compiled one failed.
    """
    spec = vectorised.spec
    records = probe_records(spec)
    requests = [{c.name: [r[c.name]] for c in spec.input_columns} for r in records]
    ids = [f"probe-{i}" for i in range(len(records))]
    want = vectorised.score_requests(requests, ids)
    try:
        got = compiled.score_requests(requests, ids)
    except Exception as error:  # noqa: BLE001 - any failure keeps the model vectorised
        raise NotCompilable(f"probe records failed: {type(error).__name__}: {error}") from error
    for index, (expected, actual) in enumerate(zip(want, got, strict=True)):
        difference = outcome_difference(expected, actual, exact=compiled.model.exact)
        if difference:
            raise NotCompilable(f"probe record {index} differs: {difference}")


def outcome_difference(want: Outcome, got: Outcome, exact: bool, rtol: float = 1e-12) -> str:
    """What differs between two outcomes of one request ('' when none)."""
    if type(want) is not type(got):
        return f"{type(want).__name__} vs {type(got).__name__}"
    if isinstance(want, Rejected) and isinstance(got, Rejected):
        if (want.problems, want.total) != (got.problems, got.total):
            return f"problems {[str(p) for p in want.problems]} vs {[str(p) for p in got.problems]}"
        return ""
    assert isinstance(want, Accepted) and isinstance(got, Accepted)
    if want.ids != got.ids:
        return f"ids {want.ids} vs {got.ids}"
    pairs = [(want.predictions, got.predictions)]
    if want.probabilities is not None or got.probabilities is not None:
        pairs.append(
            (
                [list(p.values()) for p in want.probabilities or []],
                [list(p.values()) for p in got.probabilities or []],
            )
        )
    for expected, actual in pairs:
        if not _same_numbers(expected, actual, exact, rtol):
            return f"predictions {expected} vs {actual}"
    return ""


def _same_numbers(expected: list[Any], actual: list[Any], exact: bool, rtol: float) -> bool:
    if len(expected) != len(actual):
        return False
    left, right = np.asarray(expected), np.asarray(actual)
    if left.dtype.kind not in "fc" or right.dtype.kind not in "fc":
        return bool((left == right).all())
    if exact:
        return bool(np.array_equal(left, right, equal_nan=True))
    return bool(np.allclose(left, right, rtol=rtol, atol=0.0, equal_nan=True))
