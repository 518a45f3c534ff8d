"""``faceqan serve`` over HTTP: a FastAPI app for an ASGI server (uvicorn).

    POST /score[?faces=largest|all|error&aligned=0|1&name=...]   the encoded image as the body,
                                                                  or multipart ``file`` fields
    POST /explain[?aligned=0|1&name=...]   the noise-map panel (PNG) of the largest face
    GET  /health   alive          GET /ready   model loaded         GET /metrics   Prometheus
    GET  /docs     OpenAPI page (its assets served here, nothing from a CDN)   GET /openapi.json

``/score`` answers 200 with ``{"results": [rows], "seconds": s}`` whenever the images were
processed (one row per face, as in ``faceqan score``; an undecodable image or one without a
face is a row with its status). Errors are JSON ``{"error": ..., "id": ...}``: 400 bad
request, 401 missing or wrong API key, 404, 405, 408 body not received in time, 413 body over
the limit, 499 client gone (counted, not read), 503 (with Retry-After) when the queue, the
decode slots or the bytes held are full (decided before the body is read where it can be) or
the scoring worker is not running, 504 when a request passes its deadline, 500 for anything
unexpected (its id is logged with the traceback). Each exception maps to its answer in one
handler; the pieces (limits, metrics, the work's thread) live in their own modules.
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations (Request,
# Query, ...) at definition time, and they are imported inside create_app.
import asyncio
import functools
import hmac
import logging
import time
import uuid
from contextlib import asynccontextmanager
from importlib import resources
from typing import Annotated

from ..batcher import Cancelled, Overloaded, Stopped
from ..extras import require
from ..faces.prepare import FACE_POLICIES
from ..version import __version__
from .core import QualityService, RequestError
from .limits import ByteBudget, DecodeSlots, ServiceLimits
from .metrics import CountRequests, ServiceMetrics
from .request_ids import RequestIds, current_request_id

__all__ = ["ServiceLimits", "create_app"]

log = logging.getLogger("faceqan.service")

# The request bodies as OpenAPI declares them, so that /docs offers a file to send.
BINARY = {"type": "string", "format": "binary"}
ONE_UPLOAD = {"required": True, "content": {"image/*": {"schema": BINARY}, "application/octet-stream": {"schema": BINARY}}}
UPLOADS = {"requestBody": {"required": True, "content": {
    **ONE_UPLOAD["content"],
    "multipart/form-data": {"schema": {"type": "object", "properties": {"file": {"type": "array", "items": BINARY}}, "required": ["file"]}},
}}}  # fmt: skip
KEY_HELP = "missing or wrong API key (X-API-Key header or Authorization: Bearer)"


class BodyTimeout(Exception):
    """The body did not arrive within the read time-out (408)."""


class DeadlinePassed(Exception):
    """The request was not done within its deadline (504)."""


def create_app(service: QualityService, limits: ServiceLimits | None = None, api_key: str | None = None):
    """The ASGI app serving ``service``; ``api_key``: required on /score and /explain when set."""
    require("fastapi", "serve", "faceqan serve")
    require("fastapi_offline", "serve", "the offline /docs page")
    require("python_multipart", "serve", "multipart uploads")
    prometheus = require("prometheus_client", "serve", "the /metrics endpoint")
    from fastapi_offline import FastAPIOffline  # /docs with its assets served here: no CDN

    limits = limits or ServiceLimits()
    metrics = ServiceMetrics(prometheus, lambda: service.queued)
    service._batcher.on_batch = metrics.batch_sizes.observe

    @asynccontextmanager
    async def lifespan(app):
        app.state.budget = ByteBudget(limits.max_buffered_bytes)
        app.state.slots = DecodeSlots(limits.max_decodes)
        app.state.explain_slots = DecodeSlots(limits.max_explains)  # an attack each: kept off /score's slots
        yield
        service.close()  # after uvicorn's graceful shutdown: nothing is scored any more

    app = FastAPIOffline(title="faceqan", version=__version__, summary="Face image quality (FaceQAN) for one FR model", lifespan=lifespan)
    app.add_middleware(CountRequests, metrics=metrics)
    app.add_middleware(RequestIds)  # added last: the outermost, so every answer carries the id
    _add_error_handlers(app, limits)
    require_key, holds_key = _key_checks(api_key)
    _add_scoring_routes(app, service, limits, metrics, require_key)
    _add_status_routes(app, service, metrics, holds_key)
    return app


def _add_error_handlers(app, limits: ServiceLimits) -> None:
    """Each exception a request can end with, answered once: JSON ``{"error", "id"}``."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    def error(status: int, message: str, headers: dict | None = None, error_id: str | None = None) -> JSONResponse:
        error_id = error_id or current_request_id.get() or uuid.uuid4().hex[:12]
        return JSONResponse({"error": message, "id": error_id}, status_code=status, headers=headers)

    retry = {"Retry-After": str(limits.retry_after)}
    answers = {
        # The exception's own headers stay (Allow on 405, WWW-Authenticate on 401).
        StarletteHTTPException: lambda exc: error(exc.status_code, str(exc.detail), getattr(exc, "headers", None)),
        RequestValidationError: lambda exc: error(400, "; ".join(f"{e['loc'][-1]}: {e['msg']}" for e in exc.errors())),
        RequestError: lambda exc: error(int(exc.status), str(exc)),
        Overloaded: lambda exc: error(503, f"overloaded: {exc}; retry later", retry),
        Stopped: lambda exc: error(503, f"not scoring: {exc}", retry),
        Cancelled: lambda exc: error(499, f"the client closed the request: {exc}"),  # nobody reads it; the metrics count it
        BodyTimeout: lambda _: error(408, f"the body did not arrive within {limits.read_timeout:g} s"),
        DeadlinePassed: lambda _: error(504, f"not done within the {limits.deadline:g} s deadline"),
    }
    def handler(answer):
        async def handle(_request, exc: Exception) -> JSONResponse:  # async: a plain def would run in a worker thread
            return answer(exc)

        return handle

    for kind, answer in answers.items():
        app.add_exception_handler(kind, handler(answer))

    @app.exception_handler(Exception)
    async def unexpected(_request, exc: Exception) -> JSONResponse:
        error_id = current_request_id.get() or uuid.uuid4().hex[:12]
        log.error("request failed (id %s)", error_id, exc_info=exc)
        return error(500, f"internal error (id {error_id}, logged)", error_id=error_id)


def _key_checks(api_key: str | None):
    """``require_key`` (a Security dependency: 401 without the key) and ``holds_key`` (whether the
    caller gave it); with no key set, everyone holds it. Async, like ``admit``: FastAPI runs a plain
    def dependency in a worker thread, and each such thread lingers after a burst of requests."""
    from fastapi import Depends, HTTPException, Security
    from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

    header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the service's API key")
    bearer = HTTPBearer(auto_error=False, description="the service's API key as a bearer token")

    async def holds_key(key: Annotated[str | None, Security(header)] = None, credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)] = None) -> bool:
        if api_key is None:
            return True
        given = key or (credentials.credentials if credentials is not None else "")
        return hmac.compare_digest(given.encode(), api_key.encode())

    async def require_key(held: bool = Depends(holds_key)) -> None:
        if not held:
            raise HTTPException(401, KEY_HELP, headers={"WWW-Authenticate": 'Bearer realm="faceqan", charset="UTF-8"'})

    return require_key, holds_key


def _add_scoring_routes(app, service: QualityService, limits: ServiceLimits, metrics: ServiceMetrics, require_key) -> None:
    """POST /score and POST /explain: admitted before their bodies are read, the body bounded,
    the work done in a decode slot's thread."""
    from fastapi import Depends, Query, Request
    from fastapi.responses import Response

    from .uploads import read_body, read_uploads  # starlette: imported once the serve extra is checked
    from .work import in_decode_slot

    def slots_of(request: Request) -> DecodeSlots:
        return request.app.state.explain_slots if request.url.path == "/explain" else request.app.state.slots

    async def admit(request: Request) -> None:
        """503 for a request that would be refused once its body arrived: decided before reading it."""
        if not service.ready:  # nothing handed in now would be scored
            raise Stopped("the scoring worker is not running")
        if service.full:
            raise Overloaded(f"{service.queued} faces are waiting to be scored")
        if slots_of(request).full():
            raise Overloaded(f"{slots_of(request).waiting} uploads are waiting for their turn")

    async def within(seconds: float, work, timeout: Exception):
        try:
            return await asyncio.wait_for(work, max(seconds, 0.0))
        except asyncio.TimeoutError:
            raise timeout from None

    async def prepare_and_score(request: Request, files: list, faces: str, aligned: bool, chips: bool) -> list[dict]:
        """Each file decoded in a slot of its own, side by side; then the request's faces scored as one job."""
        tasks = [asyncio.ensure_future(in_decode_slot(request, slots_of(request), service.prepare, data, file, faces, aligned)) for file, data in files]
        try:
            per_file = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:  # one file's error (or the deadline) stops its siblings
                task.cancel()
            raise
        prepared = [face for file_faces in per_file for face in file_faces]
        return await in_decode_slot(request, slots_of(request), functools.partial(service.score_prepared, chips=chips), prepared)

    faces_query = Query("largest", description="which faces get a row: largest, all, or error (fail on several)", json_schema_extra={"enum": list(FACE_POLICIES)})
    aligned_query = Query(False, description="the upload is an aligned chip already: no detection")
    name_query = Query("upload", description="the name the result rows carry")
    chips_query = Query(False, description="also return each face's aligned crop (`chip_png`, a PNG data URL)")

    @app.post("/score", summary="Quality of each face of the uploaded image(s)", dependencies=[Depends(require_key), Depends(admit)], openapi_extra=UPLOADS)
    async def score(request: Request, faces: str = faces_query, aligned: bool = aligned_query, name: str = name_query, chips: bool = chips_query):
        started = time.perf_counter()
        with request.app.state.budget.account() as take:
            files = await within(limits.read_timeout, read_uploads(request, name, limits.max_bytes, take), BodyTimeout())
            work = prepare_and_score(request, files, faces, aligned, chips)
            rows = await within(limits.deadline - (time.perf_counter() - started), work, DeadlinePassed())
        metrics.faces.inc(sum(row["status"] == "ok" for row in rows))
        rows = [{k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()} for row in rows]  # NaN is not JSON
        return {"results": rows, "seconds": round(time.perf_counter() - started, 4)}

    @app.post("/explain", summary="The noise-map panel (PNG) of the largest face of the uploaded image", dependencies=[Depends(require_key), Depends(admit)],
              openapi_extra={"requestBody": ONE_UPLOAD}, response_class=Response, responses={200: {"description": "the panel", "content": {"image/png": {"schema": BINARY}}}})  # fmt: skip
    async def explain(request: Request, aligned: bool = aligned_query, name: str = name_query):
        with request.app.state.budget.account() as take:
            data = await within(limits.read_timeout, read_body(request, limits.max_bytes, take), BodyTimeout())
            png = await within(limits.deadline, in_decode_slot(request, slots_of(request), service.explain, data, name, aligned), DeadlinePassed())
        return Response(png, media_type="image/png")


def _add_status_routes(app, service: QualityService, metrics: ServiceMetrics, holds_key) -> None:
    """The page, /health, /ready (settings only for the key's holder) and /metrics."""
    from fastapi import Depends
    from fastapi.responses import HTMLResponse, JSONResponse, Response

    page = (resources.files("faceqan.service") / "static" / "index.html").read_text(encoding="utf-8")

    @app.get("/", summary="A page to score photos in the browser", response_class=HTMLResponse)
    async def index():
        return HTMLResponse(page)

    @app.get("/health", summary="The process is alive and its scoring worker running (503 otherwise: restart it)")
    async def health():
        if not service.ready:  # the worker died: nothing would ever be scored again, so an orchestrator should restart us
            return JSONResponse({"status": "dead", "reason": "the scoring worker is not running"}, status_code=503)
        return {"status": "ok"}

    @app.get("/ready", summary="The model is loaded and scoring (with its settings for a caller holding the key)")
    async def ready(held: bool = Depends(holds_key)):
        if service.draining:  # stopping: a load balancer should send new work elsewhere
            return JSONResponse({"status": "draining", "reason": "the service is stopping"}, status_code=503)
        if not service.ready:
            return JSONResponse({"status": "not ready", "reason": "the scoring worker is not running"}, status_code=503)
        answer = {"status": "ready", "queued_faces": service.queued}
        if held:  # settings name files (model, student): only for the key's holder
            answer.update(model=service.model.spec.name, settings=service.settings)
        return answer

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics_text():
        return Response(metrics.text(), media_type=metrics.prometheus.CONTENT_TYPE_LATEST)
