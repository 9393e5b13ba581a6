"""``mlops predict``: score an unlabeled file with the champion, through the service's code path.

The file is read like a landed batch (any CSV dialect or Parquet, values as text), then cleaned,
validated and predicted by :class:`~mlops_assets.serving.scoring.Scorer`, exactly as the service
does for JSON records. The output keeps each row's position in the input, its ids, the
prediction and the model version that made it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mlops_assets.ingest.readers import read_landed_file
from mlops_assets.registry.mlflow_resource import MlflowTracking
from mlops_assets.serving.records import ROW_NUMBER, RequestProblem
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


def read_input(path: Path, spec: UseCaseSpec) -> pd.DataFrame:
    """The file's rows as text; every spec column must be there (the target need not)."""
    if not path.is_file():
        raise BatchScoringError(f"no such file: {path}")
    frame = read_landed_file(path.name, path.read_bytes())
    missing = [c.name for c in spec.input_columns if c.name not in frame.columns]
    if missing:
        raise BatchScoringError(f"{path}: missing columns {missing}")
    return frame


def segment_of_file(spec: UseCaseSpec, path: Path) -> UseCaseSpec:
    """The segment that scores a file: the first whose fields are all among its columns.

    The service's routing rule applied to a whole file (one header, so one segment).
    """
    from mlops_assets.serving.routing import choose_segment, no_segment_message

    if not path.is_file():
        raise BatchScoringError(f"no such file: {path}")
    columns = list(read_landed_file(path.name, path.read_bytes()).columns)
    segment = choose_segment(columns, spec)
    if segment is None:
        raise BatchScoringError(
            f"{path}: its columns {no_segment_message(columns, spec).replace('carries', 'carry')}"
        )
    return spec.segment_spec(segment)


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


def write_output(frame: pd.DataFrame, path: Path) -> None:
    """Parquet for ``.parquet``/``.pq``, CSV otherwise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in {".parquet", ".pq"}:
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)


def predict_file(
    spec: UseCaseSpec,
    mlflow: MlflowTracking,
    source: Path,
    output: Path,
    skip_invalid: bool = False,
) -> BatchResult:
    """Score ``source`` with the champion into ``output``.

    Raises:
        BatchScoringError: No champion, unreadable file, missing columns, or invalid rows
            (unless ``skip_invalid``: then they are left out and reported).
    """
    from mlops_assets.serving.bento import champion_ref

    if spec.segments:
        spec = segment_of_file(spec, source)
    ref = champion_ref(spec, mlflow)
    if ref is None:
        raise BatchScoringError(f"{spec.name}: no champion in the registry; run a refresh first")
    raw = read_input(source, spec)
    scorer = Scorer(
        spec, mlflow.load_pipeline(ref.model_name, ref.version), ref.model_name, ref.version
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
