"""Records in, predictions out: the one code path of the service and of ``mlops predict``.

Raw records are cleaned by :func:`~mlops_assets.features.cleaning.clean_frame` (the code that
builds ``clean_data``), validated against the spec's domains, shaped by
:func:`~mlops_assets.features.pipeline.model_input` and predicted by the registered pipeline with
:func:`~mlops_assets.training.families.predict_frame`. Nothing here re-implements a cleaning rule.

Requests arrive as columns (one list per spec column; a records body is turned into columns
first). Several requests can be scored in one pass (:meth:`Scorer.score_requests`): their
columns are concatenated, cleaned, validated and predicted together, and problems are traced
back to the request and record they came from, so one bad request never fails its neighbours.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlops_assets.features.cleaning import clean_frame
from mlops_assets.features.derived import model_spec
from mlops_assets.features.forecast import (
    date_column,
    history_needed,
    request_features,
)
from mlops_assets.features.history import StoredHistory
from mlops_assets.features.pipeline import model_input
from mlops_assets.features.validation import validate_frame
from mlops_assets.prediction_log import ScoredBatch
from mlops_assets.serving.records import (
    ROW_NUMBER,
    RequestProblem,
    problem,
    raw_frame,
    type_problems,
)
from mlops_assets.specs.model import ColumnSpec, NullIfRule, UseCaseSpec
from mlops_assets.training.families import predict_frame


@dataclass
class Accepted:
    """Predictions for every record of one request, in record order; ids as columns."""

    predictions: list[Any]
    ids: dict[str, list[Any]]
    probabilities: list[dict[str, float]] | None = None
    model_name: str = ""
    model_version: str = ""


@dataclass
class Rejected:
    """Why a request was not scored: its problems, first ones only, and how many there were."""

    problems: list[RequestProblem]
    total: int

    def message(self) -> str:
        """One line naming the first problem and the count of the others."""
        first = str(self.problems[0])
        more = self.total - 1
        return first if more <= 0 else f"{first} (and {more} more problem{'s' * (more > 1)})"


@dataclass
class FrameScore:
    """A whole file's scores (``mlops predict``): cleaned rows, predictions and problems."""

    cleaned: pd.DataFrame
    predictions: np.ndarray
    probabilities: np.ndarray | None
    problems: list[RequestProblem]


class Scorer:
    """A loaded pipeline with the spec that describes its input.

    Args:
        spec: The use case.
        pipeline: The registered scikit-learn pipeline (group imputers included).
        model_name: Registered model name, echoed in answers and the log.
        model_version: Registered model version.
        on_scored: Called with every batch of accepted rows (the prediction log's ``append``).
        problem_limit: Problems reported per rejected request.
        history: Where a forecast's lag features are read from (the stored ``clean_data``);
            required for a forecast, unused for other tasks.
    """

    def __init__(
        self,
        spec: UseCaseSpec,
        pipeline: Any,
        model_name: str,
        model_version: str,
        on_scored: Callable[[ScoredBatch], None] | None = None,
        problem_limit: int = 20,
        history: StoredHistory | None = None,
    ) -> None:
        self.spec = spec
        self.model_spec = model_spec(spec)  # a forecast's model also reads derived lags
        self._history = history
        self.pipeline = pipeline
        self.model_name = model_name
        self.model_version = model_version
        self.on_scored = on_scored
        self.problem_limit = problem_limit

    def score_requests(
        self, requests: Sequence[Mapping[str, list[Any]]], request_ids: Sequence[str]
    ) -> list[Accepted | Rejected]:
        """Score several requests in one pass; each gets its predictions or its own problems.

        Each request is a column mapping that passed the shape checks of
        :mod:`~mlops_assets.serving.records` (every spec column, equal lengths).
        """
        names = [c.name for c in self.spec.input_columns]
        starts = request_starts(requests, names[0])
        cleaned, problems = self._clean_and_check(concatenate(requests, names))
        outcomes: dict[int, Accepted | Rejected] = dict(
            rejections(problems, starts, self.problem_limit)
        )
        accepted = [i for i in range(len(requests)) if i not in outcomes]
        if accepted:
            outcomes.update(self._predict_accepted(cleaned, accepted, starts, request_ids))
        return [outcomes[i] for i in range(len(requests))]

    def score_frame(self, raw: pd.DataFrame) -> FrameScore:
        """Score a file's rows (text as read from CSV); rows with problems are not predicted."""
        frame = raw.copy()
        frame[ROW_NUMBER] = range(len(frame))
        cleaned, problems = self._clean_checked_frame(frame, [])
        bad = {p.row for p in problems}
        keep = ~cleaned.index.isin(list(bad))
        good = cleaned[keep]
        predictions, probabilities = self._predict(good)
        return FrameScore(good, predictions, probabilities, sorted(problems))

    # ------------------------------------------------------------ steps

    def check(self, columns: Mapping[str, list[Any]]) -> list[RequestProblem]:
        """Every problem of a request's records, without scoring (nothing is logged)."""
        return self._clean_and_check(columns)[1]

    def _clean_and_check(
        self, columns: Mapping[str, list[Any]]
    ) -> tuple[pd.DataFrame, list[RequestProblem]]:
        """Cleaned rows indexed by record number, and every problem of every record."""
        return self._clean_checked_frame(raw_frame(columns), type_problems(columns, self.spec))

    def _clean_checked_frame(
        self, frame: pd.DataFrame, typed: list[RequestProblem]
    ) -> tuple[pd.DataFrame, list[RequestProblem]]:
        cleaned, report = clean_frame(frame, self.spec)
        cleaned.index = pd.Index(cleaned[ROW_NUMBER].to_numpy(), name=ROW_NUMBER)
        problems = list(typed)
        if report.rows_out < report.rows_in:
            dropped = sorted(set(range(len(frame))) - set(cleaned.index.tolist()))
            problems.extend(self._dropped_row_problems(frame, dropped))
        problems.extend(self._unexplained_nulls(frame, cleaned, report.invalid_rows, problems))
        seen = {p.location for p in problems}
        order = {c.name: i for i, c in enumerate(self.spec.input_columns)}
        for found in validate_frame(cleaned, self.spec, limit=max(len(cleaned), 1)):
            moved = problem(found.row, found.field, found.message, order.get(found.field, 0))
            if moved.location not in seen:
                problems.append(moved)
        return cleaned, problems

    def _dropped_row_problems(self, raw: pd.DataFrame, rows: list[int]) -> list[RequestProblem]:
        """Why cleaning dropped rows: a required id is missing, or nothing in them is usable."""
        found: list[RequestProblem] = []
        required = [c for c in self.spec.id_columns if not c.nullable and c.name in raw.columns]
        for row in rows:
            missing = [c for c in required if is_blank(raw[c.name].iloc[row])]
            found.extend(problem(row, c, "is required") for c in missing)
            if not missing:
                found.append(problem(row, None, "has no usable value (all missing or invalid)"))
        return found

    def _unexplained_nulls(
        self,
        raw: pd.DataFrame,
        cleaned: pd.DataFrame,
        invalid: Mapping[str, list[int]],
        known: list[RequestProblem],
    ) -> list[RequestProblem]:
        """Values cleaning could not read that no check above explained (a safety net).

        The type checks mirror cleaning's readers; should a spec rule make cleaning reject a
        value the checks accepted, that record is still rejected rather than predicted on a
        silently missing value. Only the values cleaning counted as unreadable are looked at
        (``invalid``: their positions per column), so a value a ``null_if`` rule turned into
        missing is never one, whatever else its batch holds.
        """
        found: list[RequestProblem] = []
        counted = {p.location for p in known}
        kept = set(cleaned.index.tolist())
        order = {c.name: i for i, c in enumerate(self.spec.input_columns)}
        numbers = raw[ROW_NUMBER].to_numpy()
        for name, positions in invalid.items():
            if name not in order or name not in raw.columns:
                continue
            sentinels = null_if_texts(self.spec.column(name))
            values = raw[name].to_numpy(dtype=object)
            for position in positions:
                row = int(numbers[position])
                if row not in kept:
                    continue
                message = unexplained_message(row, name, values[position], counted, sentinels)
                if message:
                    found.append(problem(row, self.spec.column(name), message, order[name]))
        return found

    def _predict(self, cleaned: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        if cleaned.empty:
            return np.array([]), None
        rows = self._forecast_rows(cleaned) if self.spec.task == "forecast" else cleaned
        return predict_frame(self.pipeline, model_input(rows, self.model_spec), self.model_spec)

    def _forecast_rows(self, cleaned: pd.DataFrame) -> pd.DataFrame:
        """Requested rows with lag features derived from the stored history of their series."""
        if self._history is None:
            raise ValueError(f"{self.spec.name}: forecasts need the stored history to score")
        dates = pd.to_datetime(cleaned[date_column(self.spec)])
        first = dates.min().date() - dt.timedelta(days=history_needed(self.spec))
        past = self._history.rows(first, dates.max().date() - dt.timedelta(days=1))
        return request_features(past, cleaned, self.spec, known_from=pd.Timestamp(first))

    def _predict_accepted(
        self,
        cleaned: pd.DataFrame,
        accepted: list[int],
        starts: Sequence[int],
        request_ids: Sequence[str],
    ) -> dict[int, Accepted]:
        ranges = [(int(starts[i]), int(starts[i + 1])) for i in accepted]
        rows = np.concatenate([np.arange(a, b) for a, b in ranges])
        subset = cleaned if len(rows) == len(cleaned) else cleaned.loc[rows]
        predictions, probabilities = self._predict(subset)
        ids = {name: _json_values(subset[name]) for name in self.spec.id_names}
        outcomes: dict[int, Accepted] = {}
        offset = 0
        for index, (a, b) in zip(accepted, ranges, strict=True):
            part = slice(offset, offset + b - a)
            outcomes[index] = Accepted(
                predictions=predictions[part].tolist(),
                ids={name: values[part] for name, values in ids.items()},
                probabilities=self._probability_records(probabilities, part),
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

    def _probability_records(
        self, probabilities: np.ndarray | None, part: slice
    ) -> list[dict[str, float]] | None:
        if probabilities is None:
            return None
        classes = list(self.spec.target.classes or [])
        return [dict(zip(classes, row, strict=True)) for row in probabilities[part].tolist()]


def _json_values(values: pd.Series) -> list[Any]:
    """An id column as JSON-ready values: dates as ``YYYY-MM-DD``, missing as ``None``."""
    if pd.api.types.is_datetime64_any_dtype(values):
        values = values.dt.strftime("%Y-%m-%d")
    return values.astype(object).where(values.notna(), None).tolist()


def is_blank(value: Any) -> bool:
    """A raw value that says nothing: null, NaN or white space."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return True
    return isinstance(value, str) and not value.strip()


def null_if_texts(column: ColumnSpec) -> set[str]:
    """The column's ``null_if`` sentinels as text (a raw value spelling one is no mystery)."""
    return {
        str(value)
        for rule in column.cleaning
        if isinstance(rule, NullIfRule)
        for value in rule.values
    }


def unexplained_message(
    row: int, name: str, value: Any, counted: set[str], sentinels: set[str]
) -> str | None:
    """The safety net's message for an unreadable raw value, unless something explains it."""
    if f"records[{row}].{name}" in counted:
        return None
    text = str(value).strip()
    if not text or text in sentinels:
        return None
    return f"cannot be read: {value!r}"


def request_starts(requests: Sequence[Mapping[str, list[Any]]], first: str) -> list[int]:
    """Where each request's records start in the concatenated batch, and the batch's end."""
    starts = [0]
    for request in requests:
        starts.append(starts[-1] + len(request[first]))
    return starts


def rejections(
    problems: Sequence[RequestProblem], starts: Sequence[int], limit: int
) -> dict[int, Rejected]:
    """The problems of a concatenated batch, as each request's own rejection.

    A problem is numbered within its request; a request is shown its first ``limit``
    problems (in record and column order) and told how many it has.
    """
    found: dict[int, list[RequestProblem]] = {}
    for item in problems:
        index = bisect.bisect_right(starts, item.row) - 1
        found.setdefault(index, []).append(_renumber(item, item.row - starts[index]))
    return {index: Rejected(sorted(items)[:limit], len(items)) for index, items in found.items()}


def _renumber(found: RequestProblem, row: int) -> RequestProblem:
    """A problem found in a concatenated batch, numbered within its own request."""
    location = found.location.replace(f"records[{found.row}]", f"records[{row}]", 1)
    return RequestProblem(row, found.column, location, found.message)


def concatenate(requests: Sequence[Mapping[str, list[Any]]], names: list[str]) -> dict:
    """One column mapping of several requests (the request itself when there is one)."""
    if len(requests) == 1:
        return {name: requests[0][name] for name in names}
    return {name: [v for request in requests for v in request[name]] for name in names}
