"""``mlops predict``: score an unlabeled file with the champion, through the service's code path.

The file is read like a landed batch (any CSV dialect or Parquet, values as text), then cleaned,
validated and predicted by :class:`~mlops_assets.serving.scoring.Scorer`, exactly as the service
does for JSON records. The output keeps each row's position in the input, its ids, the
prediction and the model version that made it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mlops_assets.environment import Environment
from mlops_assets.features.history import StoredHistory
from mlops_assets.ingest.readers import UnreadableFileError, local_file_bytes, read_landed_file
from mlops_assets.registry.status import champion_ref
from mlops_assets.serving.records import ROW_NUMBER, RequestProblem
from mlops_assets.serving.routing import choose_slot, no_slot_message
from mlops_assets.serving.scoring import FrameScore, Scorer
from mlops_assets.specs.model import UseCaseSpec


class BatchScoringError(ValueError):
    """A file cannot be scored as asked; the message names the file and the problem."""


@dataclass(frozen=True)
class BatchResult:
    """What ``mlops predict`` wrote."""

    output: Path
    rows_in: int
    rows_scored: int
    problems: list[RequestProblem]
    model_name: str
    model_version: str


def read_file(path: Path) -> pd.DataFrame:
    """A file's rows as text, or an error naming what the path is (a directory, ``/dev/null``)."""
    try:
        return read_landed_file(path.name, local_file_bytes(path))
    except UnreadableFileError as error:
        raise BatchScoringError(str(error)) from None


def checked_input(frame: pd.DataFrame, path: Path, spec: UseCaseSpec) -> pd.DataFrame:
    """The rows, if every spec column is there (the target need not)."""
    missing = [c.name for c in spec.input_columns if c.name not in frame.columns]
    if missing:
        raise BatchScoringError(f"{path}: missing columns {missing}")
    return frame


def slot_of_columns(spec: UseCaseSpec, columns: list[str], path: Path) -> UseCaseSpec:
    """The slot that scores a file: the service's routing rule applied to its header.

    A segmented use case's file goes to the first segment whose fields are all among its
    columns (one header, so one segment).
    """
    view = choose_slot(columns, spec)
    if view is None:
        raise BatchScoringError(
            f"{path}: its columns {no_slot_message(columns, spec).replace('carries', 'carry')}"
        )
    return view


def output_frame(score: FrameScore, spec: UseCaseSpec, name: str, version: str) -> pd.DataFrame:
    """Row position, ids, prediction (and class probabilities) and the model of each row."""
    columns: dict[str, object] = {"row": score.cleaned[ROW_NUMBER].to_numpy()}
    for column in spec.id_names:
        columns[column] = score.cleaned[column].to_numpy()
    columns["prediction"] = score.predictions
    if score.probabilities is not None:
        for index, label in enumerate(spec.target.classes or []):
            columns[f"proba_{label}"] = score.probabilities[:, index]
    columns["model_name"] = name
    columns["model_version"] = version
    return pd.DataFrame(columns)


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def neutralised(frame: pd.DataFrame) -> pd.DataFrame:
    """Text cells a spreadsheet would run as a formula, made inert (OWASP's CSV injection advice).

    A text value starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return (an id
    landed as ``=HYPERLINK("http://evil","x")``) gets a leading single quote. Numbers are left
    alone: numeric columns, and text that is a plain number (``-12.5``), which a spreadsheet
    reads as a number.
    """
    out = frame.copy()
    for name in out.columns:
        if pd.api.types.is_numeric_dtype(out[name]) or pd.api.types.is_bool_dtype(out[name]):
            continue
        out[name] = out[name].map(_inert)
    return out


def _inert(value: object) -> object:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        if not PLAIN_NUMBER.fullmatch(value):
            return "'" + value
    return value


def write_output(frame: pd.DataFrame, path: Path) -> None:
    """Parquet for ``.parquet``/``.pq``, CSV otherwise (formulas neutralised)."""
    if path.is_dir():
        raise BatchScoringError(f"{path} is a directory: give the output file's name")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in {".parquet", ".pq"}:
        frame.to_parquet(path, index=False)
    else:
        neutralised(frame).to_csv(path, index=False)


def predict_file(
    spec: UseCaseSpec,
    env: Environment,
    source: Path,
    output: Path,
    skip_invalid: bool = False,
) -> BatchResult:
    """Score ``source`` with the champion into ``output``.

    ``spec`` is a slot's view, or a use case whose slot is chosen by the file's columns.

    Raises:
        BatchScoringError: No champion, unreadable file, missing columns, or invalid rows
            (unless ``skip_invalid``: then they are left out and reported).
    """
    if output.is_dir():
        raise BatchScoringError(f"{output} is a directory: give the output file's name")
    frame = read_file(source)  # a directory, a device or an empty file is named first
    if spec.segment is None:
        spec = slot_of_columns(spec, list(frame.columns), source)
    tracking = env.tracking()
    ref = champion_ref(spec, tracking)
    if ref is None:
        raise BatchScoringError(f"{spec.name}: no champion in the registry; run a refresh first")
    raw = checked_input(frame, source, spec)
    scorer = Scorer(
        spec,
        tracking.load_pipeline(ref.model_name, ref.version),
        ref.model_name,
        ref.version,
        history=StoredHistory(env.lake(), spec),
    )
    score = scorer.score_frame(raw)
    if score.problems and not skip_invalid:
        shown = "\n".join(f"  {p}" for p in score.problems[:20])
        more = len(score.problems) - 20
        raise BatchScoringError(
            f"{source}: {len(score.problems)} invalid values (rows are 0-based); "
            f"fix them or pass --skip-invalid:\n{shown}"
            + (f"\n  ... {more} more" if more > 0 else "")
        )
    write_output(output_frame(score, spec, ref.model_name, ref.version), output)
    return BatchResult(
        output, len(raw), len(score.cleaned), score.problems, ref.model_name, ref.version
    )
