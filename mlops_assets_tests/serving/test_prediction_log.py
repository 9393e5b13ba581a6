"""The prediction log: written off the request path, complete after ``close``, stable types."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from mlops_assets.features.cleaning import clean_frame
from mlops_assets.prediction_log import (
    PredictionLog,
    ScoredBatch,
    compact_log_day,
    drop_log_days_before,
    empty_log_frame,
    log_arrow,
    log_days,
    log_frame,
    log_prefix,
    read_prediction_log,
)
from mlops_assets.specs import UseCaseSpec
from mlops_assets.storage.objectstore import LocalObjectStore
from mlops_assets.storage.tables import write_arrow
from mlops_assets_tests.harness.records import scored_batch

batch = scored_batch


def test_close_writes_every_queued_row(spec: UseCaseSpec, tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    log = PredictionLog(store, spec, flush_interval_s=3600)
    for index in range(50):
        log.append(batch(spec, [f"r{index}a", f"r{index}b"], [1, 2]))
    assert read_prediction_log(store, spec.name).empty
    log.close()
    log.close()
    logged = read_prediction_log(store, spec.name)
    assert len(logged) == 150 and logged["request_id"].nunique() == 100
    assert logged.groupby("request_id")["record"].max().max() == 1
    assert set(logged["model_version"]) == {"3"}
    assert (log.rows_written, log.files_written) == (150, 1)
    with pytest.raises(RuntimeError):
        log.append(batch(spec, ["late"], [1]))


def test_interval_flushes_while_running(spec: UseCaseSpec, tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    log = PredictionLog(store, spec, flush_interval_s=0.05)
    log.append(batch(spec, ["a"], [1]))
    deadline = dt.datetime.now() + dt.timedelta(seconds=5)
    while read_prediction_log(store, spec.name).empty and dt.datetime.now() < deadline:
        pass
    assert len(read_prediction_log(store, spec.name)) == 1
    log.close()


def test_column_types_do_not_depend_on_the_values(spec: UseCaseSpec) -> None:
    full = log_frame([batch(spec, ["a"], [1])], spec)
    empty_values = log_frame(
        [
            batch(
                spec, ["b"], [1], Item_Weight=None, Outlet_Size=None, Outlet_Establishment_Year=None
            )
        ],
        spec,
    )
    assert full.dtypes.to_dict() == empty_values.dtypes.to_dict()
    assert str(full["Outlet_Size"].dtype) == "string"
    assert str(full["Outlet_Establishment_Year"].dtype) == "Int64"


def test_a_written_file_reads_back_with_the_log_s_types_whatever_its_batches(
    spec: UseCaseSpec, tmp_path: Path
) -> None:
    """Frame batches, list batches (the compiled path's) and odd values: one schema."""
    framed = batch(spec, ["f"], [2])
    listed = batch(spec, ["l"], [2])
    columns = {name: framed.cleaned[name].tolist() for name in framed.cleaned.columns}
    columns["Outlet_Size"] = [7, None]  # not text: logged as its text, a gap stays missing
    columns["Item_Weight"] = ["not a number", 3.5]
    listed.cleaned = columns
    store = LocalObjectStore(tmp_path)
    log = PredictionLog(store, spec, flush_interval_s=3600)
    for scored in (framed, listed, framed):
        log.append(scored)
    log.close()
    logged = read_prediction_log(store, spec.name)
    expected = empty_log_frame(spec).dtypes.to_dict()
    assert {name: logged[name].dtype for name in expected} == expected
    assert log_frame([framed, listed], spec).dtypes.to_dict() == expected
    rows = logged[logged["request_id"] == "l"]
    assert rows["Outlet_Size"].tolist() == ["7", pd.NA]
    assert rows["Item_Weight"].isna().tolist() == [True, False]
    assert logged["record"].tolist() == [0, 1, 0, 1, 0, 1]


def test_a_failed_write_is_retried(spec: UseCaseSpec, tmp_path: Path) -> None:
    class FlakyStore(LocalObjectStore):
        failures = 1

        def put_bytes(self, key: str, data: bytes) -> None:
            if self.failures:
                self.failures -= 1
                raise OSError("disk unavailable")
            super().put_bytes(key, data)

    store = FlakyStore(tmp_path)
    log = PredictionLog(store, spec, flush_interval_s=0.05)
    log.append(batch(spec, ["a"], [2]))
    deadline = dt.datetime.now() + dt.timedelta(seconds=5)
    while log.rows_written < 2 and dt.datetime.now() < deadline:
        pass
    log.close()
    assert len(read_prediction_log(store, spec.name)) == 2


def test_classifier_rows_keep_labels_and_probabilities(tmp_path: Path) -> None:
    from mlops_assets.generators import get_generator
    from mlops_assets.specs import use_case_specs

    spec = use_case_specs()["loan_approval"]
    raw = get_generator(spec.generator or spec.name).generate(4, dt.date(2025, 1, 1), 1)
    cleaned, _ = clean_frame(raw, spec)
    classes = spec.target.classes or []
    probabilities = np.tile(np.linspace(1, 2, len(classes)), (len(cleaned), 1))
    labels = np.array([classes[0]] * len(cleaned), dtype=object)
    scored = ScoredBatch(["a"], [len(cleaned)], cleaned, labels, "m", "1", probabilities)
    store = LocalObjectStore(tmp_path)
    log = PredictionLog(store, spec, flush_interval_s=3600)
    log.append(scored)
    log.close()
    logged = read_prediction_log(store, spec.name)
    assert logged["prediction"].tolist() == [classes[0]] * len(cleaned)
    assert [f"proba_{c}" for c in classes] == [c for c in logged.columns if c.startswith("proba_")]


# --- the spool: answered batches survive a killed process ---------------------------------------

SPOOLING_PROCESS = """
import sys, time
from pathlib import Path
from mlops_assets.prediction_log import PredictionLog
from mlops_assets.specs import use_case_specs
from mlops_assets.storage.objectstore import LocalObjectStore
from mlops_assets_tests.harness.records import scored_batch as batch

spec = use_case_specs()["bigmart_sales"]
log = PredictionLog(LocalObjectStore(Path(sys.argv[1])), spec, 3600, spool_root=Path(sys.argv[2]))
for index in range(40):
    log.append(batch(spec, [f"k{index}"], [1 + index % 3]))
print("appended", flush=True)
time.sleep(600)
"""


def _killed_after_appending(tmp_path: Path) -> tuple[Path, Path]:
    """A process that spooled 40 batches (80 rows) and was SIGKILLed before any flush."""
    import os
    import signal
    import subprocess
    import sys

    storage, spool = tmp_path / "storage", tmp_path / "spool"
    process = subprocess.Popen(
        [sys.executable, "-c", SPOOLING_PROCESS, str(storage), str(spool)],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == b"appended\n"
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    return storage, spool


def test_a_killed_process_s_batches_reach_the_log_once(spec: UseCaseSpec, tmp_path: Path) -> None:
    """Before the spool, whatever a SIGKILLed worker had queued was lost."""
    storage, spool = _killed_after_appending(tmp_path)
    store = LocalObjectStore(storage)
    assert read_prediction_log(store, spec.name).empty and list(spool.rglob("*.spool"))
    expected = {f"k{index}": 1 + index % 3 for index in range(40)}
    for _ in range(2):  # the next worker, then another: nothing is written twice
        log = PredictionLog(store, spec, flush_interval_s=3600, spool_root=spool)
        log.close()
        logged = read_prediction_log(store, spec.name)
        assert logged.groupby("request_id").size().to_dict() == expected
    assert not list(spool.rglob("*.spool"))


def test_recovery_skips_batches_already_logged(spec: UseCaseSpec, tmp_path: Path) -> None:
    """A worker killed after writing its batches, before deleting its spool file."""
    from mlops_assets.prediction_log import spool_folder

    store = LocalObjectStore(tmp_path / "storage")
    batches = [batch(spec, [f"d{index}"], [2]) for index in range(3)]
    written = PredictionLog(store, spec, flush_interval_s=3600)
    for item in batches[:2]:
        written.append(item)
    written.close()
    folder = spool_folder(
        tmp_path / "spool", store.describe(f"{spec.name}/prediction_log/"), spec.name
    )
    folder.mkdir(parents=True)
    lines = b"".join(item.to_json([c.name for c in spec.input_columns]) for item in batches)
    (folder / "1-dead-000000.spool").write_bytes(lines + lines[:50])  # last line cut short
    log = PredictionLog(store, spec, flush_interval_s=3600, spool_root=tmp_path / "spool")
    log.close()
    logged = read_prediction_log(store, spec.name)
    assert logged.groupby("request_id").size().to_dict() == {"d0": 2, "d1": 2, "d2": 2}
    assert log.rows_recovered == 2


def test_a_live_worker_s_spool_is_left_alone(spec: UseCaseSpec, tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "storage")
    live = PredictionLog(store, spec, flush_interval_s=3600, spool_root=tmp_path / "spool")
    live.append(batch(spec, ["live"], [1]))
    other = PredictionLog(store, spec, flush_interval_s=3600, spool_root=tmp_path / "spool")
    other.close()
    assert read_prediction_log(store, spec.name).empty  # not adopted while its worker lives
    live.close()
    assert read_prediction_log(store, spec.name)["request_id"].tolist() == ["live"]
    assert not list((tmp_path / "spool").rglob("*.spool"))


def test_spooled_rows_match_the_logged_rows(tmp_path: Path) -> None:
    """Classifier labels, probabilities, missing values and types survive the spool line."""
    from mlops_assets.specs import use_case_specs

    spec = use_case_specs()["loan_approval"]
    from mlops_assets.generators import get_generator

    raw = get_generator(spec.name).generate(5, dt.date(2025, 3, 1), seed=2)
    cleaned, _ = clean_frame(raw, spec)
    original = ScoredBatch(
        ["p"], [5], cleaned, np.array(["Approved"] * 5), "m", "1", np.full((5, 2), 0.5)
    )
    back = ScoredBatch.from_json(original.to_json([c.name for c in spec.input_columns]))
    pd.testing.assert_frame_equal(log_frame([back], spec), log_frame([original], spec))
    assert back.key() == original.key()


def test_a_compiled_batch_s_columns_spool_as_a_frame_s_do(spec: UseCaseSpec) -> None:
    """The compiled executor hands the log one list per column, not a frame: the spool line and
    the logged rows are the same either way (a list has no ``tolist``: every answer was a 500)."""
    framed = scored_batch(spec, ["a", "b"], [2, 1])
    listed = ScoredBatch(
        framed.request_ids,
        framed.row_counts,
        {name: framed.cleaned[name].tolist() for name in framed.cleaned.columns},
        framed.predictions,
        framed.model_name,
        framed.model_version,
        scored_at=framed.scored_at,
    )
    columns = [c.name for c in spec.input_columns]
    assert listed.to_json(columns) == framed.to_json(columns)
    back = ScoredBatch.from_json(listed.to_json(columns))
    pd.testing.assert_frame_equal(log_frame([back], spec), log_frame([framed], spec))


def test_spool_files_go_once_written_and_do_not_pile_up_while_failing(
    spec: UseCaseSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    store = LocalObjectStore(tmp_path / "storage")
    spool = tmp_path / "spool"
    log = PredictionLog(store, spec, flush_interval_s=0.05, spool_root=spool)
    for index in range(3):
        log.append(batch(spec, [f"w{index}"], [1]))
        time.sleep(0.2)
    assert len(list(spool.rglob("*.spool"))) <= 1  # the current segment only
    monkeypatch.setattr(log, "_write_rows", lambda table, first: 1 / 0)  # the store is down
    for index in range(5):
        log.append(batch(spec, [f"f{index}"], [1]))
        time.sleep(0.15)
    assert len(list(spool.rglob("*.spool"))) == 1  # one segment grows, not one per attempt
    monkeypatch.undo()
    log.close()
    assert len(read_prediction_log(store, spec.name)) == 8
    assert not list(spool.rglob("*.spool"))


def test_values_orjson_refuses_or_changes_survive_the_spool_line(spec: UseCaseSpec) -> None:
    """The spool line is orjson's, with the standard library for what orjson refuses: a lone
    surrogate a client sent escaped, an integer beyond 64 bits. NaN, NA and NaT come back
    missing, as the log writes them."""
    framed = scored_batch(spec, ["a"], [3])
    text = [c.name for c in spec.input_columns if c.type == "categorical"][0]
    number = [c.name for c in spec.input_columns if c.type == "numeric"][0]
    cleaned = framed.cleaned.copy()
    cleaned[text] = pd.Series(["ok", "\ud800 lone", pd.NA], dtype=object)
    cleaned[number] = pd.Series([np.nan, 2.5, 2**70], dtype=object)
    odd = ScoredBatch(["a"], [3], cleaned, framed.predictions, "m", "1", scored_at=framed.scored_at)
    columns = [c.name for c in spec.input_columns]
    back = ScoredBatch.from_json(odd.to_json(columns))
    assert back.cleaned[text].tolist()[:2] == ["ok", "\ud800 lone"]
    assert pd.isna(back.cleaned[text].tolist()[2])
    values = back.cleaned[number].tolist()
    assert pd.isna(values[0]) and values[1:] == [2.5, 2**70]

    plain = ScoredBatch(
        ["b"], [3], framed.cleaned, framed.predictions, "m", "1", scored_at=framed.scored_at
    )
    plain.cleaned.loc[0, number] = np.nan
    back = ScoredBatch.from_json(plain.to_json(columns))
    pd.testing.assert_frame_equal(log_frame([back], spec), log_frame([plain], spec))


# ---------------------------------------------------------------- compaction and retention


def _write_part(store, spec: UseCaseSpec, day: str, minute: int, ids: list[str]) -> str:
    """One log object as a serving worker writes it: a few seconds of answered batches."""
    scored = batch(spec, ids, [1 + i % 3 for i in range(len(ids))])
    scored.scored_at = dt.datetime.fromisoformat(f"{day}T10:{minute:02d}:00+00:00")
    key = f"{log_prefix(spec.name)}{day}/{scored.scored_at:%Y%m%dT%H%M%S%fZ}-7-{minute:06d}.parquet"
    write_arrow(store, key, log_arrow([scored], spec))
    return key


def _rows(store, spec: UseCaseSpec, day: str | None = None) -> pd.DataFrame:
    logged = read_prediction_log(store, spec.name, day)
    return logged.sort_values(["logged_at", "request_id", "record"]).reset_index(drop=True)


class FailingStore(LocalObjectStore):
    """A folder store whose writes and deletes fail from the ``fail_at``-th on (a crash)."""

    def __init__(self, root: Path, fail_at: int) -> None:
        super().__init__(root)
        self.fail_at, self.changes = fail_at, 0

    def _change(self) -> None:
        self.changes += 1
        if self.changes >= self.fail_at:
            raise OSError("crashed")

    def put_bytes(self, key: str, data: bytes) -> None:
        self._change()
        super().put_bytes(key, data)

    def delete(self, key: str) -> None:
        self._change()
        super().delete(key)


def test_a_compacted_day_reads_the_same_rows_from_one_object(
    spec: UseCaseSpec, tmp_path: Path
) -> None:
    store = LocalObjectStore(tmp_path)
    for minute in (30, 5, 17, 42):  # written out of order by two workers
        _write_part(store, spec, "2026-03-01", minute, [f"m{minute}a", f"m{minute}b"])
    _write_part(store, spec, "2026-03-02", 1, ["next"])
    before = _rows(store, spec)

    done = compact_log_day(store, spec.name, "2026-03-01")
    assert done is not None and (done.merged, done.written, done.rows) == (4, 1, len(before) - 1)
    day = [i.key for i in store.list(f"{log_prefix(spec.name)}2026-03-01/")]
    assert len(day) == 1 and day[0].endswith(".parquet")
    pd.testing.assert_frame_equal(_rows(store, spec), before)
    compacted = read_prediction_log(store, spec.name, "2026-03-01")
    assert compacted["logged_at"].is_monotonic_increasing, "rows in logged order"
    assert compact_log_day(store, spec.name, "2026-03-01") is None, "nothing left to do"

    _write_part(store, spec, "2026-03-01", 50, ["late"])  # a dead worker's spool, recovered
    assert compact_log_day(store, spec.name, "2026-03-01").merged == 2
    assert len(list(store.list(f"{log_prefix(spec.name)}2026-03-01/"))) == 1
    assert _rows(store, spec, "2026-03-01")["request_id"].iloc[-1] == "late"


def test_a_compaction_stopped_at_any_step_loses_and_doubles_no_row(
    spec: UseCaseSpec, tmp_path: Path
) -> None:
    """A crash before each write or delete: readers see the rows once, the next run finishes."""
    steps = 1 + 2 + 3 + 1  # manifest, two tables, three parts, the older manifest
    for fail_at in range(1, steps + 1):
        root = tmp_path / f"crash-{fail_at}"
        store = LocalObjectStore(root)
        _write_part(store, spec, "2026-03-01", 1, ["a", "b"])
        _write_part(store, spec, "2026-03-01", 2, ["c"])
        compact_log_day(store, spec.name, "2026-03-01")  # an earlier compaction, then:
        _write_part(store, spec, "2026-03-01", 3, ["d"])
        other = _write_part(store, spec, "2026-03-01", 4, ["e"])  # another slot's columns
        table = pq.read_table(root / other)
        write_arrow(store, other, table.drop_columns(["Item_MRP"]))
        before = _rows(store, spec)
        with pytest.raises(OSError, match="crashed"):
            compact_log_day(FailingStore(root, fail_at), spec.name, "2026-03-01")
        pd.testing.assert_frame_equal(_rows(store, spec), before, obj=f"crash at step {fail_at}")
        compact_log_day(store, spec.name, "2026-03-01")
        pd.testing.assert_frame_equal(_rows(store, spec), before)
        left = [i.key for i in store.list(f"{log_prefix(spec.name)}2026-03-01/")]
        assert sum(key.endswith(".parquet") for key in left) == 2, left  # one per column set
    done = compact_log_day(FailingStore(tmp_path / "crash-1", steps + 1), spec.name, "2026-03-01")
    assert done is None


def test_days_before_the_cutoff_are_dropped_whole(spec: UseCaseSpec, tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    for day in ("2026-01-30", "2026-01-31", "2026-02-01"):
        _write_part(store, spec, day, 1, ["a"])
        _write_part(store, spec, day, 2, ["b"])
    assert log_days(store, spec.name) == ["2026-01-30", "2026-01-31", "2026-02-01"]
    assert drop_log_days_before(store, spec, "2026-01-31") == 1
    assert log_days(store, spec.name) == ["2026-01-31", "2026-02-01"]
    assert read_prediction_log(store, spec.name, "2026-01-30").empty
    assert len(read_prediction_log(store, spec.name)) == 4 * 1
