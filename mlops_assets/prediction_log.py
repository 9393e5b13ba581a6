"""The prediction log: every answered record, its prediction, model version and request id.

Written off the response path: the service hands each scored batch to :meth:`PredictionLog.append`
(a queue put), and a background thread writes the queued rows as one Parquet object every few
seconds under ``<storage>/<use_case>/prediction_log/<YYYY-MM-DD>/``, local folder or ``s3://``
alike; or, when ``MLOPS_PREDICTION_LOG_DATABASE`` names a database (PostgreSQL), as rows appended
to its table ``prediction_log__<use_case>`` (created on first write) in one transaction.
:meth:`PredictionLog.close` writes what is left; the service calls it on shutdown (SIGTERM).

A killed worker (SIGKILL, out of memory) runs no shutdown. So, with a spool folder, every batch is
also appended to a local spool file (:class:`PredictionSpool`) before :meth:`PredictionLog.append`
returns, that is before its answers leave; a plain ``write``, no ``fsync``: the page cache
outlives a killed process, not a machine crash before the OS writes the page. A spool file is
deleted once its batches are in the log; a spool file whose writer died (its ``flock`` is free)
is moved into the log by the next worker at start, or by a running worker's flusher, idempotently:
a batch already in the log (same request id, model and time) is not written again.

Monitoring reads the log back with :func:`read_prediction_log`. The columns are the spec's id and
feature columns as the model saw them (cleaned, before imputation), with stable types in every
file, plus ``request_id``, ``record`` (position in its request), ``logged_at``, ``model_name``,
``model_version`` and ``prediction`` (``proba_<class>`` columns for classifiers).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import io
import itertools
import json
import logging
import os
import queue
import re
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from mlops_assets import names
from mlops_assets.specs.model import UseCaseSpec
from mlops_assets.storage.objectstore import ObjectStore
from mlops_assets.storage.tables import read_table, write_arrow

logger = logging.getLogger(__name__)

_STOP = object()
INSERT_CHUNK_ROWS = 1000


@dataclass
class ScoredBatch:
    """Accepted rows of one scoring pass, as the prediction log keeps them."""

    request_ids: list[str]
    row_counts: list[int]
    cleaned: pd.DataFrame | Mapping[str, list[Any]]
    """The rows' cleaned columns: a frame (vectorised path) or one list per column (compiled)."""
    predictions: np.ndarray
    model_name: str
    model_version: str
    probabilities: np.ndarray | None = None
    scored_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def to_json(self, columns: Sequence[str]) -> bytes:
        """One spool line: the batch's logged columns as lists, and what answered them."""
        cleaned = self.cleaned
        document = {
            "request_ids": list(self.request_ids),
            "row_counts": [int(n) for n in self.row_counts],
            "model_name": self.model_name,
            "model_version": self.model_version,
            "scored_at": self.scored_at.isoformat(),
            "columns": {name: _values(cleaned[name]) for name in columns if name in cleaned},
            "predictions": np.asarray(self.predictions).tolist(),
            "probabilities": None
            if self.probabilities is None
            else np.asarray(self.probabilities).tolist(),
        }
        return _spool_json(document) + b"\n"

    @classmethod
    def from_json(cls, line: bytes) -> ScoredBatch:
        """A batch back from its spool line."""
        document = json.loads(line)
        probabilities = document.get("probabilities")
        return cls(
            request_ids=list(document["request_ids"]),
            row_counts=list(document["row_counts"]),
            cleaned=pd.DataFrame(document["columns"]),
            predictions=np.asarray(document["predictions"]),
            model_name=document["model_name"],
            model_version=document["model_version"],
            probabilities=None if probabilities is None else np.asarray(probabilities, float),
            scored_at=dt.datetime.fromisoformat(document["scored_at"]),
        )

    def key(self) -> tuple[str, str, int]:
        """What identifies the batch in the log: first request id, model, time (microseconds)."""
        return (self.request_ids[0], self.model_name, _microseconds(self.scored_at))


def _spool_json(document: dict[str, Any]) -> bytes:
    """A spool line's JSON: orjson, else ``json`` for what orjson refuses.

    The line is written on the answer's path (a 10,000-row batch took the standard library a
    tenth of the request). orjson refuses text that is not valid UTF-8 and integers beyond 64
    bits; it writes a NaN as ``null``, which the log reads back as missing, as it does NaN.
    """
    try:
        return orjson.dumps(document, default=_plain, option=orjson.OPT_SERIALIZE_NUMPY)
    except TypeError:
        return json.dumps(document, default=_plain, separators=(",", ":")).encode()


def _plain(value: Any) -> Any:
    """JSON for what ``tolist()`` leaves: missing markers, timestamps, numpy scalars."""
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _microseconds(moment: Any) -> int:
    """A timestamp as integer microseconds since the epoch (UTC), the log's precision."""
    stamp = pd.Timestamp(moment)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return int(stamp.value // 1000)


class PredictionSpool:
    """Scored batches appended to local files first, so a killed worker's answers are kept.

    A worker writes to its own segment file (``<pid>-<token>-<n>.spool``, one JSON line per
    batch) and holds an exclusive ``flock`` on every segment it has not yet deleted: the kernel
    releases it when the worker dies, which is how another worker tells an orphan from a live
    file. The flusher starts a new segment after each successful write; a segment is deleted
    once all its batches are in the log (a failing store leaves one growing segment, not one
    per attempt).

    Args:
        folder: This log's spool folder (one per log destination and model).
        columns: The columns a batch keeps (the spec's input columns).
    """

    def __init__(self, folder: Path, columns: Sequence[str]) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.columns = list(columns)
        self._token = uuid.uuid4().hex[:8]
        self._numbers = itertools.count()
        self._lock = threading.Lock()
        self._open: dict[int, int] = {}  # segment number -> fd (locked)
        self._appended: dict[int, int] = {}
        self._written: dict[int, int] = {}
        self._current = self._new_segment()

    def _path(self, number: int) -> Path:
        return self.folder / f"{os.getpid()}-{self._token}-{number:06d}.spool"

    def _new_segment(self) -> int:
        number = next(self._numbers)
        fd = os.open(self._path(number), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._open[number] = fd
        self._appended[number] = 0
        self._written[number] = 0
        return number

    def append(self, batch: ScoredBatch) -> int:
        """Write one batch to the current segment (a plain write); returns the segment."""
        line = batch.to_json(self.columns)
        with self._lock:
            number = self._current
            os.write(self._open[number], line)
            self._appended[number] += 1
            return number

    def rotate(self) -> None:
        """Start a new segment (the flusher does after a write, so finished ones can go)."""
        with self._lock:
            if self._appended[self._current]:
                self._current = self._new_segment()

    def written(self, segments: Sequence[int]) -> None:
        """These batches' rows are in the log: delete the segments that are complete."""
        with self._lock:
            for number in segments:
                self._written[number] += 1
            for number in [n for n in self._open if n != self._current]:
                if self._written[number] >= self._appended[number]:
                    self._discard(number)

    def _discard(self, number: int) -> None:
        fd = self._open.pop(number)
        try:
            self._path(number).unlink(missing_ok=True)
        finally:
            os.close(fd)  # the lock goes with the descriptor
        del self._appended[number], self._written[number]

    def close(self) -> None:
        """Delete the segments whose batches are all written; leave (and unlock) the others."""
        with self._lock:
            for number in list(self._open):
                if self._written[number] >= self._appended[number]:
                    self._discard(number)
                else:
                    os.close(self._open.pop(number))

    def orphans(self) -> Iterator[tuple[Path, int, list[ScoredBatch]]]:
        """Spool files no live worker holds, locked for the caller, with their batches.

        The caller deletes each file (:meth:`adopted`) once its batches are in the log, or
        releases it (:meth:`release`) to leave it for later. A last line cut short (the
        writer killed during its write) is skipped.
        """
        for path in sorted(self.folder.glob("*.spool")):
            if path.name.startswith(f"{os.getpid()}-{self._token}-"):
                continue
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue  # adopted by another worker meanwhile
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue  # its worker is alive
            if not path.exists():  # deleted between listing and locking
                os.close(fd)
                continue
            yield path, fd, list(_read_spool(path))

    @staticmethod
    def adopted(path: Path, fd: int) -> None:
        """An orphan's batches are in the log: delete it and drop its lock."""
        try:
            path.unlink(missing_ok=True)
        finally:
            os.close(fd)

    @staticmethod
    def release(fd: int) -> None:
        """Leave an orphan for a later attempt."""
        os.close(fd)


def _read_spool(path: Path) -> Iterator[ScoredBatch]:
    with path.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.endswith(b"\n"):
                logger.warning("prediction log spool %s: line %d cut short, skipped", path, number)
                continue
            try:
                yield ScoredBatch.from_json(line)
            except (ValueError, KeyError, TypeError):
                logger.warning("prediction log spool %s: line %d unreadable, skipped", path, number)


def spool_folder(root: Path, destination: str, model_name: str) -> Path:
    """A log's spool folder: one per model and destination, so no log adopts another's."""
    digest = hashlib.sha256(destination.encode()).hexdigest()[:12]
    return Path(root) / f"{model_name}-{digest}"


def log_prefix(use_case: str) -> str:
    """Key prefix of a use case's prediction log in the storage."""
    return names.prediction_log_prefix(use_case)


def log_table(model: str) -> str:
    """Table of a model's prediction log in a database (columns differ per model)."""
    return names.prediction_log_table(model)


def _engine(database_url: str) -> Any:
    """A SQLAlchemy engine (one per URL and process; sqlalchemy imported on first use)."""
    engine = _ENGINES.get(database_url)
    if engine is None:
        import sqlalchemy

        engine = sqlalchemy.create_engine(database_url, pool_pre_ping=True)
        _ENGINES[database_url] = engine
    return engine


_ENGINES: dict[str, Any] = {}


def log_frame(batches: Sequence[ScoredBatch], spec: UseCaseSpec) -> pd.DataFrame:
    """Rows of scored batches with the log's fixed column types (:func:`log_arrow` as a frame)."""
    return log_arrow(batches, spec).to_pandas()


def log_arrow(batches: Sequence[ScoredBatch], spec: UseCaseSpec) -> Any:
    """Rows of scored batches as one Arrow table with the log's fixed schema, in one pass.

    Built column by column straight into Arrow, not through a pandas frame of nullable types:
    the log writer shares the GIL with the request path, and for a 10,000-row batch the frame
    route held it about four times as long (most of it validating ``string`` values). The
    schema carries the pandas metadata of :func:`empty_log_frame`, so every file reads back
    with the same types (``string``, ``Int64``) whichever way it was written.
    """
    import pyarrow as pa

    schema = _log_schema(spec)
    counts = [count for batch in batches for count in batch.row_counts]
    per_batch = [sum(batch.row_counts) for batch in batches]
    arrays: dict[str, Any] = {
        "request_id": np.repeat([i for batch in batches for i in batch.request_ids], counts),
        "record": np.concatenate([np.arange(c) for c in counts]) if counts else np.array([], int),
        "logged_at": np.repeat([_microseconds(b.scored_at) for b in batches], per_batch),
        "model_name": np.repeat([b.model_name for b in batches], per_batch),
        "model_version": np.repeat([b.model_version for b in batches], per_batch),
    }
    for column in spec.input_columns:
        arrays[column.name] = _arrow_typed(_joined(batches, column.name), column.type)
    predictions = (
        np.concatenate([np.asarray(b.predictions) for b in batches]) if batches else np.array([])
    )
    if spec.is_classification:
        arrays["prediction"] = _arrow_typed(pd.Series(predictions, dtype=object), "text")
        classes = spec.target.classes or []
        probabilities = _stacked_probabilities(batches, len(classes), int(sum(counts)))
        for index, name in enumerate(classes):
            arrays[f"proba_{name}"] = probabilities[:, index]
    else:
        arrays["prediction"] = predictions.astype("float64")
    return pa.Table.from_arrays([_as_field(arrays[f.name], f) for f in schema], schema=schema)


def empty_log_frame(spec: UseCaseSpec) -> pd.DataFrame:
    """The log's columns and types, no rows: what every log file reads back as."""
    columns: dict[str, Any] = {
        "request_id": pd.array([], dtype="string"),
        "record": np.array([], dtype="int64"),
        "logged_at": pd.Series([], dtype="datetime64[us, UTC]"),
        "model_name": pd.array([], dtype="string"),
        "model_version": pd.array([], dtype="string"),
    }
    for column in spec.input_columns:
        columns[column.name] = _typed(pd.Series([], dtype=object), column.type)
    if spec.is_classification:
        columns["prediction"] = pd.array([], dtype="string")
        for name in spec.target.classes or []:
            columns[f"proba_{name}"] = np.array([], dtype="float64")
    else:
        columns["prediction"] = np.array([], dtype="float64")
    return pd.DataFrame(columns)


_SCHEMAS: dict[tuple[Any, ...], Any] = {}


def _log_schema(spec: UseCaseSpec) -> Any:
    """The Arrow schema (with pandas metadata) of a use case's log, built once per shape."""
    import pyarrow as pa

    shape = (
        tuple((c.name, c.type) for c in spec.input_columns),
        spec.is_classification,
        tuple(spec.target.classes or []),
    )
    if shape not in _SCHEMAS:
        _SCHEMAS[shape] = pa.Schema.from_pandas(empty_log_frame(spec), preserve_index=False)
    return _SCHEMAS[shape]


def _joined(batches: Sequence[ScoredBatch], name: str) -> pd.Series:
    """One column of every batch as one Series: frames' columns as they are, lists flattened.

    Runs of list batches (the compiled path's: often hundreds of one-row batches) become one
    Series each, so a flush of small batches is not a concatenation of hundreds of pieces.
    """
    pieces: list[pd.Series] = []
    flat: list[Any] = []
    for batch in batches:
        values = batch.cleaned[name]
        if isinstance(values, list):
            flat.extend(values)
            continue
        if flat:
            pieces.append(pd.Series(flat, dtype=object))
            flat = []
        pieces.append(pd.Series(values).reset_index(drop=True))
    if flat or not pieces:
        pieces.append(pd.Series(flat, dtype=object))
    return pieces[0] if len(pieces) == 1 else pd.concat(pieces, ignore_index=True)


def _arrow_typed(values: pd.Series, kind: str) -> Any:
    """A column's values as the log's Arrow type for its kind (unreadable values missing)."""
    import pyarrow as pa

    if kind in {"numeric", "integer", "date"}:
        return pa.array(_typed(values, kind), from_pandas=True)
    objects = values.to_numpy(dtype=object)
    try:
        return pa.array(objects, type=pa.string(), from_pandas=True)
    except (pa.ArrowTypeError, pa.ArrowInvalid):  # values that are not text: written as text
        missing = pd.isna(objects)
        return pa.array(
            [None if gone else str(v) for v, gone in zip(objects, missing, strict=True)],
            type=pa.string(),
        )


def _as_field(values: Any, target: Any) -> Any:
    """An array of the field's type (numbers of microseconds for a timestamp, say)."""
    import pyarrow as pa

    array = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values)
    return array if array.type == target.type else array.cast(target.type)


def _values(column: Any) -> list[Any]:
    """A batch's cleaned column as a list: a frame's column, or the compiled path's list."""
    return column if isinstance(column, list) else column.tolist()


def _stacked_probabilities(batches: Sequence[ScoredBatch], classes: int, rows: int) -> np.ndarray:
    parts = [
        b.probabilities
        if b.probabilities is not None
        else np.full((sum(b.row_counts), classes), np.nan)
        for b in batches
    ]
    return np.vstack(parts) if parts else np.empty((rows, classes))


def _typed(values: pd.Series, kind: str) -> pd.Series | pd.api.extensions.ExtensionArray:
    if kind == "numeric":
        return pd.to_numeric(values, errors="coerce").astype("float64")
    if kind == "integer":
        return pd.to_numeric(values, errors="coerce").astype("Int64")
    if kind == "date":
        return pd.to_datetime(values, errors="coerce")
    return values.astype(object).where(values.notna(), None).astype("string")


class PredictionLog:
    """Appends scored batches to Parquet objects from a background thread.

    Args:
        store: Where the log is written (the lake: folder or ``s3://``).
        spec: The use case (fixes the column types).
        flush_interval_s: Seconds between writes while rows are queued.
        max_rows: Queued rows that trigger a write before the interval.
        database_url: A database to append rows to instead of the store (SQLAlchemy URL).
        spool_root: A local folder for the spool (see the module docstring); ``None``: no
            spool, so a killed process loses what it had queued.
    """

    def __init__(
        self,
        store: ObjectStore,
        spec: UseCaseSpec,
        flush_interval_s: float = 5.0,
        max_rows: int = 100_000,
        database_url: str | None = None,
        spool_root: Path | None = None,
    ) -> None:
        self.store = store
        self.spec = spec
        self.database_url = database_url
        self.flush_interval_s = flush_interval_s
        self.max_rows = max_rows
        self.rows_written = 0
        self.files_written = 0
        self.rows_recovered = 0
        self.spool: PredictionSpool | None = None
        if spool_root is not None:
            folder = spool_folder(spool_root, self._destination(), spec.registered_model_name())
            self.spool = PredictionSpool(folder, [c.name for c in spec.input_columns])
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._sequence = itertools.count()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def append(self, batch: ScoredBatch) -> None:
        """Spool a scored batch (one local write), then queue it for the log.

        The response waits for the spool write only, never for storage.
        """
        if self._closed.is_set():
            raise RuntimeError("the prediction log is closed")
        segment = self.spool.append(batch) if self.spool is not None else None
        self._queue.put((segment, batch))

    def close(self, timeout: float = 60.0) -> None:
        """Write everything queued and stop the thread; safe to call more than once."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._queue.put(_STOP)
        self._thread.join(timeout)
        if self._thread.is_alive():
            logger.error("prediction log: still writing after %.0f s at shutdown", timeout)

    def _run(self) -> None:
        self.recover()
        pending: list[tuple[int | None, ScoredBatch]] = []
        deadline = time.monotonic() + self.flush_interval_s
        stopping = False
        while not stopping:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                item = None
            if item is _STOP:
                stopping = True
            elif isinstance(item, tuple):
                pending.append(item)
            due = time.monotonic() >= deadline
            if pending and (stopping or due or _rows([b for _, b in pending]) >= self.max_rows):
                pending = self._write(pending, final=stopping)
            if due and not stopping:
                self.recover()  # a sibling worker may have died since
            if due or not pending:
                deadline = time.monotonic() + self.flush_interval_s
        if self.spool is not None:
            self.spool.close()

    def _write(
        self, pending: list[tuple[int | None, ScoredBatch]], final: bool
    ) -> list[tuple[int | None, ScoredBatch]]:
        """Write the queued batches at once; on failure keep them for the next try."""
        batches = [batch for _, batch in pending]
        table = log_arrow(batches, self.spec)
        try:
            where = self._write_rows(table, batches[0].scored_at)
        except Exception:
            level = logging.ERROR if final else logging.WARNING
            kept = " (kept in the spool for the next worker)" if self.spool else " (lost)"
            logger.log(
                level,
                "prediction log: could not write %d rows to %s%s",
                table.num_rows,
                self.describe(),
                kept if final else "; retrying at the next flush",
                exc_info=True,
            )
            return [] if final else pending
        logger.debug("prediction log: %d rows to %s", table.num_rows, where)
        self.rows_written += table.num_rows
        self.files_written += 1
        if self.spool is not None:  # a new segment, then the finished ones go
            self.spool.rotate()
            self.spool.written([segment for segment, _ in pending if segment is not None])
        return []

    def recover(self) -> int:
        """Move the spool files of dead workers into the log; returns the rows written.

        Idempotent: a batch the log holds already (its first request id, model and time) is
        not written again, so a worker killed after its write but before deleting its spool
        file costs nothing twice. A failed write leaves the file for the next attempt.
        """
        if self.spool is None:
            return 0
        rows = 0
        for path, fd, batches in self.spool.orphans():
            try:
                missing = self._not_logged(batches)
                if missing:
                    table = log_arrow(missing, self.spec)
                    self._write_rows(table, missing[0].scored_at)
                    rows += table.num_rows
            except Exception:
                logger.warning(
                    "prediction log: could not recover spool %s into %s; trying again later",
                    path,
                    self.describe(),
                    exc_info=True,
                )
                self.spool.release(fd)
                continue
            self.spool.adopted(path, fd)
            logger.info(
                "prediction log: recovered %d batches (%d new) of spool %s",
                len(batches),
                len(missing),
                path.name,
            )
        self.rows_recovered += rows
        return rows

    def _not_logged(self, batches: list[ScoredBatch]) -> list[ScoredBatch]:
        """The batches whose rows the log does not hold yet."""
        if not batches:
            return []
        days = sorted({b.scored_at.date().isoformat() for b in batches})
        logged = logged_batches(self.store, self.spec, days, self.database_url)
        return [b for b in batches if b.key() not in logged]

    def _destination(self) -> str:
        if self.database_url:
            return f"{self.database_url}#{log_table(self.spec.registered_model_name())}"
        return self.store.describe(log_prefix(self.spec.name))

    def describe(self) -> str:
        """Where the log goes, without credentials."""
        if self.database_url:
            table = log_table(self.spec.registered_model_name())  # one table per segment model
            return f"table {table} ({_without_password(self.database_url)})"
        return self.store.describe(log_prefix(self.spec.name))

    def _write_rows(self, table: Any, first: dt.datetime) -> str:
        """One Parquet object, or one transaction of inserts (all rows or none)."""
        if self.database_url:
            name = log_table(self.spec.registered_model_name())
            with _engine(self.database_url).begin() as connection:
                table.to_pandas().to_sql(
                    name,
                    connection,
                    if_exists="append",
                    index=False,
                    method="multi",
                    chunksize=INSERT_CHUNK_ROWS,
                )
            return name
        key = self._key(first)
        write_arrow(self.store, key, table)
        return key

    def _key(self, first: dt.datetime) -> str:
        stamp = first.strftime("%Y%m%dT%H%M%S%fZ")
        segment = f"-{self.spec.segment}" if self.spec.segment else ""  # one log per segment
        name = f"{stamp}-{os.getpid()}{segment}-{next(self._sequence):06d}.parquet"
        return f"{log_prefix(self.spec.name)}{first.date().isoformat()}/{name}"


def logged_batches(
    store: ObjectStore, spec: UseCaseSpec, days: Sequence[str], database_url: str | None
) -> set[tuple[str, str, int]]:
    """Keys (:meth:`ScoredBatch.key`) of the batches a slot's log holds on ``days``."""
    columns = ["request_id", "model_name", "logged_at", "record"]
    source = spec.registered_model_name() if database_url else spec.name
    keys: set[tuple[str, str, int]] = set()
    for day in days:
        frame = read_prediction_log(store, source, day, database_url, columns=columns)
        if frame.empty:
            continue
        first = frame[frame["record"] == 0]
        micros = pd.to_datetime(first["logged_at"], utc=True).dt.as_unit("us").astype("int64")
        ids, models = first["request_id"].astype(str), first["model_name"].astype(str)
        keys.update(zip(ids, models, micros.tolist(), strict=True))
    return keys


def _rows(batches: Sequence[ScoredBatch]) -> int:
    return sum(sum(batch.row_counts) for batch in batches)


def _without_password(url: str) -> str:
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def read_prediction_log(
    store: ObjectStore,
    use_case: str,
    day: str | None = None,
    database_url: str | None = None,
    columns: list[str] | None = None,
) -> pd.DataFrame:
    """Logged rows of a use case (of one UTC ``day`` if given), oldest first; empty if none.

    Reads the database when ``database_url`` is given (where the service was told to log),
    else the Parquet objects under the storage; ``columns``: only those.
    """
    if database_url:
        return _read_log_table(use_case, day, database_url, columns)
    prefix = log_prefix(use_case) + (f"{day}/" if day else "")
    keys = readable_log_keys(store, prefix)
    frames = [read_table(store, key, columns=columns) for key in keys]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


# ---------------------------------------------------------------- compaction and retention

COMPACTION_MANIFEST = "compaction-"
COMPACTED = "-compacted-"


def readable_log_keys(store: ObjectStore, prefix: str) -> list[str]:
    """The log objects under ``prefix`` a reader reads, each row once, in key (time) order.

    A compaction (:func:`compact_log_day`) writes a manifest naming its tables and the objects
    they replace, then the tables, then deletes the replaced objects. Once a manifest's tables
    are all there, the objects it replaced are skipped (some may not be deleted yet); until
    then, its tables are skipped and the old objects read. No reader sees a row twice.
    """
    return _log_objects(store, prefix)[0]


def _log_objects(store: ObjectStore, prefix: str) -> tuple[list[str], list[str], list[str]]:
    """The readable tables, the tables a reader skips (leftovers), and the manifests."""
    listed = [info.key for info in store.list(prefix)]
    tables = {key for key in listed if key.endswith(".parquet")}
    manifests = [key for key in listed if _is_manifest(key)]
    hidden: set[str] = set()
    for key in manifests:
        manifest = orjson.loads(store.get_bytes(key))
        if set(manifest["tables"]) <= tables:
            hidden.update(manifest["sources"])
        else:
            hidden.update(manifest["tables"])  # a compaction still writing, or one that died
    return sorted(tables - hidden), sorted(tables & hidden), manifests


def _compaction_token(key: str) -> str | None:
    """The compaction that wrote a table, or ``None`` for a table a serving worker wrote."""
    name = key.rsplit("/", 1)[-1]
    return name.split(COMPACTED, 1)[1].split("-", 1)[0] if COMPACTED in name else None


def _is_manifest(key: str) -> bool:
    return key.rsplit("/", 1)[-1].startswith(COMPACTION_MANIFEST) and key.endswith(".json")


def log_days(store: ObjectStore, use_case: str) -> list[str]:
    """The days (UTC, ``YYYY-MM-DD``) the stored log has objects on, oldest first."""
    prefix = log_prefix(use_case)
    days = {info.key[len(prefix) :].split("/", 1)[0] for info in store.list(prefix)}
    return sorted(day for day in days if re.fullmatch(r"\d{4}-\d{2}-\d{2}", day))


@dataclass(frozen=True)
class Compaction:
    """What compacting one day of the log did."""

    day: str
    merged: int  # objects replaced
    written: int  # tables written (one per set of columns: a segment's have their own)
    rows: int


def compact_log_day(store: ObjectStore, use_case: str, day: str) -> Compaction | None:
    """Merge a day's log objects into one table per set of columns; ``None`` if already one.

    A serving worker writes an object every few seconds, so a busy day holds thousands; the
    readers (monitoring, recovery) list and open each. Rows keep their values and types and
    are put in logged order. Safe against readers at any moment (:func:`readable_log_keys`)
    and against a crash at any step (the next compaction finishes the job). Run on closed days
    only: a worker may still be writing to today's.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = f"{log_prefix(use_case)}{day}/"
    visible, leftovers, manifests = _log_objects(store, folder)
    tokens = {_compaction_token(key) for key in visible}
    if (
        not leftovers
        and not manifests
        and (len(visible) <= 1 or (len(tokens) == 1 and None not in tokens))
    ):
        return None  # one object, or the tables of one finished compaction
    groups: dict[tuple[str, ...], list[Any]] = {}
    for key in visible:
        table = pq.read_table(io.BytesIO(store.get_bytes(key)))
        groups.setdefault(tuple(table.schema.names), []).append(table)
    token = uuid.uuid4().hex[:8]
    written: list[tuple[str, Any]] = []
    for number, tables in enumerate(groups.values()):
        merged = pa.concat_tables(tables).sort_by(
            [("logged_at", "ascending"), ("request_id", "ascending"), ("record", "ascending")]
        )
        first = merged["logged_at"][0].as_py() if merged.num_rows else None
        stamp = first.strftime("%Y%m%dT%H%M%S%fZ") if first is not None else day
        written.append((f"{folder}{stamp}{COMPACTED}{token}-{number}.parquet", merged))
    manifest = {"tables": [key for key, _ in written], "sources": visible}
    own = f"{folder}{COMPACTION_MANIFEST}{token}.json"
    store.put_bytes(own, orjson.dumps(manifest))
    for key, table in written:
        write_arrow(store, key, table)
    for key in [*visible, *leftovers, *manifests, own]:  # the manifest last: then no longer needed
        store.delete(key)
    rows = sum(table.num_rows for _, table in written)
    return Compaction(day, len(visible), len(written), rows)


def drop_log_days_before(
    store: ObjectStore, spec: UseCaseSpec, cutoff: str, database_url: str | None = None
) -> int:
    """Delete the log of every day before ``cutoff`` (``YYYY-MM-DD``); returns days or rows.

    In storage: whole day folders (the count of days dropped); in a database: the rows of the
    slots' tables logged before the cutoff (the count of rows).
    """
    if database_url:
        return sum(
            _delete_log_rows(view.registered_model_name(), cutoff, database_url)
            for view in spec.segment_specs()
        )
    dropped = [day for day in log_days(store, spec.name) if day < cutoff]
    for day in dropped:
        for info in store.list(f"{log_prefix(spec.name)}{day}/"):
            store.delete(info.key)
    return len(dropped)


def _delete_log_rows(model: str, cutoff: str, database_url: str) -> int:
    import sqlalchemy  # heavy: only for a database log

    engine = _engine(database_url)
    table = log_table(model)
    if not sqlalchemy.inspect(engine).has_table(table):
        return 0
    start = dt.datetime.fromisoformat(cutoff).replace(tzinfo=dt.UTC)
    with engine.begin() as connection:
        result = connection.execute(
            sqlalchemy.text(f'DELETE FROM "{table}" WHERE logged_at < :start'), {"start": start}
        )
    return int(result.rowcount or 0)


def _read_log_table(
    use_case: str, day: str | None, database_url: str, columns: list[str] | None = None
) -> pd.DataFrame:
    import sqlalchemy  # heavy: only for a database log

    engine = _engine(database_url)
    table = log_table(use_case)
    if not sqlalchemy.inspect(engine).has_table(table):
        return pd.DataFrame()
    selected = ", ".join(f'"{name}"' for name in columns) if columns else "*"
    query = f'SELECT {selected} FROM "{table}"'
    params: dict[str, Any] = {}
    if day:
        start = dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)
        query += " WHERE logged_at >= :start AND logged_at < :end"
        params = {"start": start, "end": start + dt.timedelta(days=1)}
    query += " ORDER BY logged_at, request_id, record"
    with engine.connect() as connection:
        frame = pd.read_sql(sqlalchemy.text(query), connection, params=params)
    if "logged_at" in frame:
        frame["logged_at"] = pd.to_datetime(frame["logged_at"], utc=True)
    return frame


def served_predictions(
    store: ObjectStore, spec: UseCaseSpec, days: Sequence[str] | None, database_url: str | None
) -> pd.DataFrame:
    """What the service answered for a model slot on ``days`` (all days: ``None``); maybe empty.

    A segment's answers are in its own table (columns differ), or beside the others' in
    storage, where only its own model's rows are kept.
    """
    source = spec.registered_model_name() if database_url else spec.name
    frames = [read_prediction_log(store, source, day, database_url) for day in days or [None]]
    frames = [f for f in frames if len(f)]
    served = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if spec.segment and "model_name" in served.columns:
        served = served[served["model_name"] == spec.registered_model_name()]
    return served
