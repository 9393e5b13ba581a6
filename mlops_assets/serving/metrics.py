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


UNMATCHED_ROUTE = "/{unmatched}"
STATIC_ROUTE = "/static_content/{file}"
INFRASTRUCTURE_ROUTES = frozenset(
    {"/", "/docs", "/docs.json", "/schema.json", "/metrics", "/healthz", "/livez", "/readyz"}
)
_RAW_PATH = "mlops.raw_path"


def route_template(path: str, routes: frozenset[str]) -> str:
    """The route a path matches, as a metric label: the path of a known route, else a template.

    BentoML's routes have no path parameters, so a known route is its own template; a static
    file is ``/static_content/{file}`` and anything else ``/{unmatched}``.
    """
    if path in routes or path in INFRASTRUCTURE_ROUTES:
        return path
    if path.startswith("/static_content/"):
        return STATIC_ROUTE
    return UNMATCHED_ROUTE


@cache
def route_labelled_traffic_metrics() -> None:
    """Make BentoML's request metrics label a request by its route, not by its raw path.

    BentoML's traffic middleware labels ``bentoml_service_request_*`` by ``scope["path"]``: every
    distinct unknown path became label sets of its own (31k random 404s made ``/metrics``
    68.7 MB and the worker 613 MiB larger). Its class is replaced, before the service's app is
    built (call this at the service's import), by a subclass that hands it the route template
    as the path and restores the real path for the application behind it. BentoML offers no
    setting for this (1.4).
    """
    from bentoml._internal.context import server_context
    from bentoml._internal.server.http import instruments

    base: Any = instruments.RunnerTrafficMetricsMiddleware

    class RouteLabelledTrafficMetrics(base):  # type: ignore[misc,valid-type]
        """BentoML's traffic metrics, one label set per route."""

        def __init__(self, app: Any, **options: Any) -> None:
            super().__init__(_restoring_path(app), **options)

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                routes = frozenset(server_context.service_routes)
                template = route_template(scope.get("path", ""), routes)
                if template != scope.get("path"):
                    scope = {**scope, "path": template, _RAW_PATH: scope["path"]}
            await super().__call__(scope, receive, send)

    instruments.RunnerTrafficMetricsMiddleware = RouteLabelledTrafficMetrics


def _restoring_path(app: Any) -> Any:
    async def restored(scope: Any, receive: Any, send: Any) -> None:
        if _RAW_PATH in scope:
            scope = {**scope, "path": scope[_RAW_PATH]}
            del scope[_RAW_PATH]
        await app(scope, receive, send)

    return restored
