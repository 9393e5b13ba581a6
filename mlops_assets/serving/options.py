"""Serving options, read from the environment when a service starts (never at import).

Each one can be changed per deployment without rebuilding the bento: the bento fixes the model,
the environment fixes how it is served.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from mlops_assets.serving.records import DEFAULT_MAX_RECORDS


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None


def _float(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {value!r}") from None


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in {"1", "true", "on", "yes"}:
        return True
    if value in {"0", "false", "off", "no"}:
        return False
    raise ValueError(f"{name} must be on/off, got {value!r}")


@dataclass(frozen=True)
class ServingOptions:
    """How a service answers: request limits, batching and the prediction log.

    Attributes:
        max_records: Records accepted in one request (``MLOPS_SERVING_MAX_RECORDS``); larger
            requests are answered 422 without being read further.
        max_batch_records: Records the micro-batcher merges into one model call
            (``MLOPS_SERVING_MAX_BATCH_RECORDS``); a bigger request is scored alone.
        batch_wait_ms: Time a batch waits for company after its first request
            (``MLOPS_SERVING_BATCH_WAIT_MS``). 2 ms roughly doubled batch sizes at concurrency
            32 for 2 ms of latency; 0 batches only what queued while the previous batch ran.
        workers: Service worker processes (``MLOPS_SERVING_WORKERS``).
        threads: Native threads (OpenMP, BLAS) for small batches (``MLOPS_SERVING_THREADS``).
            One by default: small batches gain nothing from more, and on a busy machine OpenMP
            threads spinning at barriers stalled predictions by 100 ms (measured).
        parallel_records: Batches of at least this many records use the libraries' default
            thread count instead (``MLOPS_SERVING_PARALLEL_RECORDS``): bulk scoring is faster.
        prediction_log: Whether answers are logged (``MLOPS_PREDICTION_LOG``, on by default).
        log_flush_s: Seconds between prediction log files (``MLOPS_PREDICTION_LOG_FLUSH_S``).
        log_max_rows: Buffered rows that force a flush (``MLOPS_PREDICTION_LOG_MAX_ROWS``).
        follow_champion: Whether the service follows the registry's ``champion`` alias
            (``MLOPS_FOLLOW_CHAMPION``): off, a bento serves the version it was built with; on
            (what ``mlops serve`` sets), a promotion or rollback is served without a restart.
        champion_poll_s: Seconds between looks at the alias (``MLOPS_CHAMPION_POLL_S``).
        segments: The segments a segmented use case's service answers for
            (``MLOPS_SERVE_SEGMENTS``, comma-separated; what ``mlops serve --segment`` sets).
            Empty: every segment.
    """

    max_records: int = DEFAULT_MAX_RECORDS
    max_batch_records: int = 2048
    batch_wait_ms: float = 2.0
    workers: int = 1
    threads: int = 1
    parallel_records: int = 1000
    prediction_log: bool = True
    log_flush_s: float = 5.0
    log_max_rows: int = 100_000
    follow_champion: bool = False
    champion_poll_s: float = 10.0
    segments: tuple[str, ...] = ()

    @classmethod
    def from_env(cls) -> ServingOptions:
        """Options from ``MLOPS_SERVING_*`` and ``MLOPS_PREDICTION_LOG*`` variables."""
        options = cls(
            max_records=_int("MLOPS_SERVING_MAX_RECORDS", cls.max_records),
            max_batch_records=_int("MLOPS_SERVING_MAX_BATCH_RECORDS", cls.max_batch_records),
            batch_wait_ms=_float("MLOPS_SERVING_BATCH_WAIT_MS", cls.batch_wait_ms),
            workers=_int("MLOPS_SERVING_WORKERS", cls.workers),
            threads=_int("MLOPS_SERVING_THREADS", cls.threads),
            parallel_records=_int("MLOPS_SERVING_PARALLEL_RECORDS", cls.parallel_records),
            prediction_log=_flag("MLOPS_PREDICTION_LOG", cls.prediction_log),
            log_flush_s=_float("MLOPS_PREDICTION_LOG_FLUSH_S", cls.log_flush_s),
            log_max_rows=_int("MLOPS_PREDICTION_LOG_MAX_ROWS", cls.log_max_rows),
            follow_champion=_flag("MLOPS_FOLLOW_CHAMPION", cls.follow_champion),
            champion_poll_s=_float("MLOPS_CHAMPION_POLL_S", cls.champion_poll_s),
            segments=tuple(
                name.strip()
                for name in os.environ.get("MLOPS_SERVE_SEGMENTS", "").split(",")
                if name.strip()
            ),
        )
        counts = (options.max_records, options.max_batch_records, options.workers, options.threads)
        if min(counts) < 1:
            raise ValueError("serving limits and worker count must be positive")
        if options.champion_poll_s <= 0:
            raise ValueError("MLOPS_CHAMPION_POLL_S must be positive")
        return options
