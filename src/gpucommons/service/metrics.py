"""Prometheus metrics of the HTTP service, in a registry owned by the app (several apps in one process,
as in tests, must not collide). Other parts add their own gauges to ``app.state.metrics_registry``;
the declared targets' gauges (``targetmetrics.py``, design note 0014) are registered here, read from
the app's sessions at its clock.

Requests are observed by a plain ASGI middleware: Starlette's ``BaseHTTPMiddleware`` (what
``@app.middleware("http")`` builds) runs every request through extra tasks and memory streams, which
cost more than the rest of a submission's web handling together.
"""

from __future__ import annotations

import time

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gpucommons.service.targetmetrics import TargetCollector


class _Observe:
    """Counts requests by method, route template and status, and times them."""

    def __init__(self, app: ASGIApp, requests: Counter, latency: Histogram) -> None:
        self.app = app
        self.requests = requests
        self.latency = latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started_s = time.perf_counter()
        status = [500]

        async def send_observed(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            template = getattr(scope.get("route"), "path", "unmatched")
            self.requests.labels(scope["method"], template, str(status[0])).inc()
            self.latency.labels(scope["method"], template).observe(time.perf_counter() - started_s)


def install_metrics(app: FastAPI) -> CollectorRegistry:
    registry = CollectorRegistry()
    requests = Counter(
        "gpuc_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=registry
    )
    latency = Histogram(
        "gpuc_http_request_duration_seconds", "HTTP request latency", ["method", "route"], registry=registry
    )

    app.add_middleware(_Observe, requests=requests, latency=latency)

    @app.get(
        "/metrics",
        tags=["service"],
        response_class=Response,
        responses={
            200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "metrics"}
        },
    )
    def metrics() -> Response:
        """Prometheus text exposition of the service's counters and gauges (no token needed)."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    registry.register(TargetCollector(app.state.sessions, app.state.clock))
    app.state.metrics_registry = registry
    return registry
