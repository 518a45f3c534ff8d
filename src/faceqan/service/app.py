"""``faceqan serve`` over HTTP: a FastAPI app for an ASGI server (uvicorn).

    POST /score[?faces=largest|all|error&aligned=0|1&name=...]   the encoded image as the body,
                                                                  or multipart ``file`` fields
    GET  /health   alive          GET /ready   model loaded         GET /metrics   Prometheus
    GET  /docs     OpenAPI page (its assets served here, nothing from a CDN)   GET /openapi.json

``/score`` answers 200 with ``{"results": [rows], "seconds": s}`` whenever the images were
processed (one row per face, as in ``faceqan score``; an undecodable image or one without a
face is a row with its status). Errors are JSON ``{"error": ..., "id": ...}``: 400 bad
request, 401 missing or wrong API key, 404, 405, 408 body not received in time, 413 body over
the limit, 503 (with Retry-After) when more faces wait than ``max_queue``, 504 when a request
passes its deadline, 500 for anything unexpected (its id is logged with the traceback).
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations (Request)
# at definition time, and they are imported inside create_app.
import asyncio
import hmac
import logging
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources

from ..batcher import Cancelled, Overloaded, Stopped
from ..extras import require
from ..version import __version__
from .core import QualityService, RequestError

log = logging.getLogger("faceqan.service")


@dataclass
class ServiceLimits:
    """What bounds the service's work (each enforced with its own status code)."""

    max_bytes: int = 20 * 1024 * 1024  # body size: 413 beyond (the one place this default is written)
    max_buffered_bytes: int = 256 * 1024 * 1024  # bodies held at once across requests: 503 beyond
    max_decodes: int = 4  # images decoded and detected at once (each a thread); as many more may wait, then 503
    read_timeout: float = 30.0  # seconds to receive a body: 408 beyond
    deadline: float = 120.0  # seconds for a whole request: 504 beyond
    retry_after: int = 2  # seconds a 503 asks the client to wait


class CountRequests:
    """ASGI middleware counting requests by endpoint and status, and their latency. Plain ASGI,
    not Starlette's BaseHTTPMiddleware: under that, ``request.is_disconnected()`` never turns
    true, and work for clients that went away would go on."""

    ENDPOINTS = ("/score", "/explain", "/health", "/ready", "/metrics", "/")

    def __init__(self, app, requests, latency) -> None:
        self.app, self.requests, self.latency = app, requests, latency

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        endpoint = scope["path"] if scope["path"] in self.ENDPOINTS else "other"
        status = "500"  # an exception escaping here is answered 500 by the outer error middleware

        async def send_and_note(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = str(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            self.requests.labels(endpoint, status).inc()
            self.latency.labels(endpoint).observe(time.perf_counter() - started)


class ByteBudget:
    """The bytes of request bodies held at once, across requests (the event loop's one thread
    counts them): a request that would pass ``limit`` is refused (Overloaded) instead of buffered."""

    def __init__(self, limit: int) -> None:
        self.limit, self.held = limit, 0

    @contextmanager
    def account(self):
        """A ``take(n)`` for one request's bytes; everything it took is given back at the end."""
        taken = 0

        def take(count: int) -> None:
            nonlocal taken
            if self.held + count > self.limit:
                raise Overloaded(f"{self.held} bytes of uploads are held already (at most {self.limit})")
            self.held += count
            taken += count

        try:
            yield take
        finally:
            self.held -= taken


def _flag(value: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "true", "yes"):
        return True
    if lowered in ("0", "false", "no", ""):
        return False
    raise RequestError(400, f"aligned must be 0/1 or true/false, got {value!r}")


def create_app(service: QualityService, limits: ServiceLimits | None = None, api_key: str | None = None):
    """The ASGI app serving ``service``; ``api_key``: required on /score when set."""
    require("fastapi", "serve", "faceqan serve")
    require("fastapi_offline", "serve", "the offline /docs page")
    require("python_multipart", "serve", "multipart uploads")
    prometheus = require("prometheus_client", "serve", "the /metrics endpoint")
    from fastapi import Request
    from fastapi_offline import FastAPIOffline  # /docs with its assets served here: no CDN
    from fastapi.responses import HTMLResponse, JSONResponse, Response
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.requests import ClientDisconnect

    limits = limits or ServiceLimits()
    registry = prometheus.CollectorRegistry()
    requests = prometheus.Counter("faceqan_requests", "HTTP requests by endpoint and status", ["endpoint", "status"], registry=registry)
    latency = prometheus.Histogram("faceqan_request_seconds", "request latency", ["endpoint"], registry=registry,
                                   buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120))  # fmt: skip
    faces = prometheus.Counter("faceqan_faces_scored", "faces scored (rows with status ok)", registry=registry)
    prometheus.Gauge("faceqan_queue_faces", "faces waiting to be scored", registry=registry).set_function(lambda: service.queued)
    batch_sizes = prometheus.Histogram("faceqan_batch_faces", "faces per scoring batch", registry=registry, buckets=(1, 2, 4, 8, 16, 32, 64, 128))
    service._batcher.on_batch = batch_sizes.observe
    decodes = asyncio.Semaphore(limits.max_decodes)
    budget = ByteBudget(limits.max_buffered_bytes)
    waiting = {"decode": 0}  # requests waiting for a decode slot (the event loop is one thread)
    app = FastAPIOffline(title="faceqan", version=__version__, summary="Face image quality (FaceQAN) for one FR model")

    def error(status: int, message: str, headers: dict | None = None, error_id: str | None = None) -> JSONResponse:
        return JSONResponse({"error": message, "id": error_id or uuid.uuid4().hex[:12]}, status_code=status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        error_id = uuid.uuid4().hex[:12]
        log.error("request failed (id %s)", error_id, exc_info=exc)
        return error(500, f"internal error (id {error_id}, logged)", error_id=error_id)

    app.add_middleware(CountRequests, requests=requests, latency=latency)

    def decoding_full() -> bool:
        return decodes.locked() and waiting["decode"] >= limits.max_decodes

    def refusal_before_the_body() -> JSONResponse | None:
        """503 for a request that would be refused once its body arrived: decide before reading it."""
        if not service.ready:  # nothing handed in now would be scored
            return unavailable(Stopped("the scoring worker is not running"))
        if service.full:
            return unavailable(Overloaded(f"{service.queued} faces are waiting to be scored"))
        if decoding_full():
            return unavailable(Overloaded(f"{waiting['decode']} uploads are waiting to be decoded"))
        return None

    async def take_decode_slot() -> None:
        """One of ``max_decodes`` slots for decoding and detecting (and explaining); as many requests
        more may wait for one, any further one is refused (Overloaded: 503)."""
        if decoding_full():
            raise Overloaded(f"{waiting['decode']} uploads are waiting to be decoded")
        waiting["decode"] += 1
        try:
            await decodes.acquire()
        finally:
            waiting["decode"] -= 1

    async def in_decode_slot(request: Request, function, *args):
        """``function(*args, cancelled)`` in a worker thread, holding one of ``max_decodes`` slots
        until the thread ends (not just until this request is answered). When the request is
        given up (its deadline: this coroutine is cancelled) or its client goes away,
        ``cancelled`` is set, so the work stops at its next boundary (decoded, or its batch's start)."""
        await take_decode_slot()
        cancelled = threading.Event()
        work = asyncio.ensure_future(run_in_threadpool(function, *args, cancelled))
        # The slot comes back when the thread ends; an outcome nobody awaits any more is read here.
        work.add_done_callback(lambda done: (decodes.release(), done.cancelled() or done.exception()))

        async def watch_the_client() -> None:
            while not work.done():
                if await request.is_disconnected():
                    cancelled.set()
                    return
                await asyncio.sleep(0.1)

        watcher = asyncio.ensure_future(watch_the_client())
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            cancelled.set()  # the answer (504) goes now; the slot comes back when the thread ends
            raise
        finally:
            watcher.cancel()

    def unavailable(exc: Exception) -> JSONResponse:
        if isinstance(exc, Stopped):
            return error(503, f"not scoring: {exc}", {"Retry-After": str(limits.retry_after)})
        return error(503, f"overloaded: {exc}; retry later", {"Retry-After": str(limits.retry_after)})

    async def read_body(request: Request, take) -> bytes:
        """The body, bounded per request (413) and across requests (``take`` from the byte budget:
        the declared length up front, so a slow upload holds its share before it arrives)."""
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limits.max_bytes):
            raise RequestError(413, f"body of {declared} bytes is over the limit of {limits.max_bytes}")
        reserved = int(declared) if declared is not None else 0
        take(reserved)
        chunks, size = [], 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limits.max_bytes:
                    raise RequestError(413, f"body over the limit of {limits.max_bytes} bytes")
                if size > reserved:
                    take(size - reserved)
                    reserved = size
                chunks.append(chunk)
        except ClientDisconnect:  # nobody to answer; not a server error
            raise RequestError(400, "the client went away before the body was complete") from None
        return b"".join(chunks)

    async def uploads(request: Request, take) -> list[tuple[str, bytes]]:
        """(name, bytes) of each uploaded image: the raw body, or each multipart ``file`` field."""
        name = request.query_params.get("name", "upload")
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            body = await read_body(request, take)  # bounded first, then parsed

            async def receive() -> dict:
                return {"type": "http.request", "body": body, "more_body": False}

            form = await Request(request.scope, receive).form(max_files=64)
            files = [(field.filename or name, await field.read()) for field in form.getlist("file") if hasattr(field, "read")]
            if not files:
                raise RequestError(400, "multipart upload without a 'file' field")
            return files
        return [(name, await read_body(request, take))]

    def authorised(request: Request) -> bool:
        if api_key is None:
            return True
        given = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        return hmac.compare_digest(given.encode(), api_key.encode())

    @app.post("/score", summary="Quality of each face of the uploaded image(s)")
    async def score(request: Request):
        if not authorised(request):
            return error(401, "missing or wrong API key (X-API-Key header or Authorization: Bearer)")
        if (refusal := refusal_before_the_body()) is not None:
            return refusal
        with budget.account() as take:
            return await score_body(request, take)

    async def score_body(request: Request, take):
        started = time.perf_counter()
        query = request.query_params
        try:
            policy, aligned = query.get("faces", "largest"), _flag(query.get("aligned", "0"))
            try:
                files = await asyncio.wait_for(uploads(request, take), limits.read_timeout)
            except asyncio.TimeoutError:
                return error(408, f"the body did not arrive within {limits.read_timeout:g} s")

            async def one(name: str, data: bytes) -> list[dict]:
                return await in_decode_slot(request, service.score, data, name, policy, aligned)

            left = limits.deadline - (time.perf_counter() - started)
            try:
                per_file = await asyncio.wait_for(asyncio.gather(*(one(n, d) for n, d in files)), max(left, 0.0))
            except asyncio.TimeoutError:
                return error(504, f"not scored within the {limits.deadline:g} s deadline")
        except RequestError as exc:
            return error(int(exc.status), str(exc))
        except (Overloaded, Stopped) as exc:
            return unavailable(exc)
        except Cancelled:  # the client went away: nobody reads this answer, the metrics count it
            return error(499, "the client closed the request before it was scored")
        rows = [row for file_rows in per_file for row in file_rows]
        faces.inc(sum(row["status"] == "ok" for row in rows))
        rows = [{k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()} for row in rows]  # NaN is not JSON
        return {"results": rows, "seconds": round(time.perf_counter() - started, 4)}

    @app.post("/explain", summary="The noise-map panel (PNG) of the largest face of the uploaded image")
    async def explain(request: Request):
        if not authorised(request):
            return error(401, "missing or wrong API key (X-API-Key header or Authorization: Bearer)")
        if (refusal := refusal_before_the_body()) is not None:
            return refusal
        with budget.account() as take:
            return await explain_body(request, take)

    async def explain_body(request: Request, take):
        try:
            try:
                data = await asyncio.wait_for(read_body(request, take), limits.read_timeout)
            except asyncio.TimeoutError:
                return error(408, f"the body did not arrive within {limits.read_timeout:g} s")
            aligned = _flag(request.query_params.get("aligned", "0"))
            name = request.query_params.get("name", "upload")
            png = await asyncio.wait_for(in_decode_slot(request, service.explain, data, name, aligned), limits.deadline)
        except RequestError as exc:
            return error(int(exc.status), str(exc))
        except Overloaded as exc:
            return unavailable(exc)
        except Cancelled:
            return error(499, "the client closed the request before it was explained")
        except asyncio.TimeoutError:
            return error(504, f"not explained within the {limits.deadline:g} s deadline")
        return Response(png, media_type="image/png")

    page = (resources.files("faceqan.service") / "static" / "index.html").read_text(encoding="utf-8")

    @app.get("/", summary="A page to score photos in the browser", response_class=HTMLResponse)
    async def index():
        return HTMLResponse(page)

    @app.get("/health", summary="The process is alive")
    async def health():
        return {"status": "ok"}

    @app.get("/ready", summary="The model is loaded and scoring (with its settings for a caller holding the key)")
    async def ready(request: Request):
        if not service.ready:
            return JSONResponse({"status": "not ready", "reason": "the scoring worker is not running"}, status_code=503)
        answer = {"status": "ready", "queued_faces": service.queued}
        if authorised(request):  # settings name files (model, student): only for the key's holder
            answer.update(model=service.model.spec.name, settings=service.settings)
        return answer

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics():
        return Response(prometheus.generate_latest(registry), media_type=prometheus.CONTENT_TYPE_LATEST)

    return app
