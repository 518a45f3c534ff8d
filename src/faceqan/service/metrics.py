"""The service's Prometheus metrics, and the ASGI middleware that counts every request."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import ModuleType

ENDPOINTS = ("/score", "/explain", "/health", "/ready", "/metrics", "/")


class ServiceMetrics:
    """Requests by endpoint and status, latency, faces scored, queue length, batch sizes."""

    def __init__(self, prometheus: ModuleType, queued: Callable[[], int]) -> None:
        self.prometheus = prometheus
        self.registry = prometheus.CollectorRegistry()
        self.requests = prometheus.Counter("faceqan_requests", "HTTP requests by endpoint and status", ["endpoint", "status"], registry=self.registry)
        self.latency = prometheus.Histogram("faceqan_request_seconds", "request latency", ["endpoint"], registry=self.registry,
                                            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120))  # fmt: skip
        self.faces = prometheus.Counter("faceqan_faces_scored", "faces scored (rows with status ok)", registry=self.registry)
        prometheus.Gauge("faceqan_queue_faces", "faces waiting to be scored", registry=self.registry).set_function(queued)
        self.batch_sizes = prometheus.Histogram("faceqan_batch_faces", "faces per scoring batch", registry=self.registry, buckets=(1, 2, 4, 8, 16, 32, 64, 128))

    def text(self) -> bytes:
        return self.prometheus.generate_latest(self.registry)


class CountRequests:
    """ASGI middleware counting requests by endpoint and status, and their latency. Plain ASGI,
    not Starlette's BaseHTTPMiddleware: under that, ``request.is_disconnected()`` never turns
    true, and work for clients that went away would go on."""

    def __init__(self, app, metrics: ServiceMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        endpoint = scope["path"] if scope["path"] in ENDPOINTS else "other"
        status = "500"  # an exception escaping here is answered 500 by the outer error middleware

        async def send_and_note(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = str(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            self.metrics.requests.labels(endpoint, status).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)
