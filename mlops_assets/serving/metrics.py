"""Prometheus metrics of the service, created once per process.

BentoML re-imports the service module when it builds a bento (``reload``), and a process may build
bentos for several use cases or homes; prometheus refuses a metric registered twice, so the
service asks for its metrics here instead of creating them at its own module level.
"""

from __future__ import annotations

from functools import cache
from typing import Any


@cache
def batch_metrics() -> tuple[Any, Any]:
    """Histograms of records and of requests per micro-batch (``mlops_batch_*`` in ``/metrics``)."""
    import bentoml

    records = bentoml.metrics.Histogram(
        name="mlops_batch_records",
        documentation="Records scored together in one pass of the micro-batcher",
        buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096, 16384),
    )
    requests = bentoml.metrics.Histogram(
        name="mlops_batch_requests",
        documentation="Requests sharing one pass of the micro-batcher",
        buckets=(1, 2, 4, 8, 16, 32, 64, 128),
    )
    return records, requests


def observe_batch(requests: int, records: int) -> None:
    """Record one micro-batch."""
    records_histogram, requests_histogram = batch_metrics()
    requests_histogram.observe(requests)
    records_histogram.observe(records)
