"""FaceQAN over HTTP, for enrolment gates and frame pickers: ``faceqan serve``.

    POST /score[?faces=largest|all|error&aligned=0|1&name=...]   body: the encoded image
    GET  /health

``/score`` answers 200 whenever the image was processed, with one row per face (the same
columns as ``faceqan score``: quality, its parts, status, error): an image that cannot be
decoded or holds no face is a row with its status, not an HTTP error. HTTP errors are for
bad requests: 400 (empty body, bad parameter), 404, 405, 411 (no length), 413 (body over
the limit). One model serves every request. Each request decodes and detects in its own
thread; the faces of concurrent requests are scored together in batches of up to
``max_batch`` (faceqan/batcher.py), so a GPU is not left idle by one-face requests.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from .batcher import Batcher
from .faces.prepare import FACE_POLICIES, FacePreparer, PreparedFace
from .methods import QualityMethod
from .models.spec import FaceModel
from .pipeline import BatchLimit, score_batch

DEFAULT_MAX_BYTES = 20 * 1024 * 1024


class RequestError(ValueError):
    """A request the service refuses, with the HTTP status that says why."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


class QualityService:
    """Scores uploaded images with one model; thread-safe. ``max_batch``: most faces scored
    together (default: the device's batch size for the model); ``max_wait``: seconds a batch
    waits for more requests."""

    def __init__(
        self, model: FaceModel, method: QualityMethod, settings: dict,
        max_batch: int | None = None, max_wait: float = 0.005, **preparer_options,
    ) -> None:  # fmt: skip
        self.model, self.method, self.settings = model, method, settings
        self.preparer_options = preparer_options
        # Detectors keep state, so each request borrows an idle preparer (made on demand, kept
        # for the next request: new threads come with every connection, a detector costs a load).
        self._idle: dict[tuple[bool, str], queue.SimpleQueue[FacePreparer]] = {}
        self._idle_lock = threading.Lock()
        self._limit = BatchLimit()  # used by the batcher's one thread only
        self._batcher: Batcher[PreparedFace, dict] = Batcher(self._score_faces, max_batch or method.default_batch_size(), max_wait)

    def _score_faces(self, faces: list[PreparedFace]) -> list[dict]:
        return score_batch(faces, self.method, self._limit)

    def _prepare(self, data: bytes, name: str, aligned: bool, faces: str) -> list[PreparedFace]:
        with self._idle_lock:
            idle = self._idle.setdefault((aligned, faces), queue.SimpleQueue())
        try:
            preparer = idle.get_nowait()
        except queue.Empty:
            preparer = self.new_preparer(aligned, faces)
        try:
            return preparer.from_bytes(name, data)
        finally:
            idle.put(preparer)

    def new_preparer(self, aligned: bool, faces: str) -> FacePreparer:
        return FacePreparer(self.model.spec, aligned, faces, **self.preparer_options)  # type: ignore[arg-type]

    def close(self) -> None:
        """Stop the scoring thread once the requests handed in are done."""
        self._batcher.close()

    def score(self, data: bytes, name: str = "upload", faces: str = "largest", aligned: bool = False) -> list[dict]:
        """One row per face of the encoded image ``data``."""
        if faces not in FACE_POLICIES:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"faces must be one of {', '.join(FACE_POLICIES)}, got {faces!r}")
        if not data:
            raise RequestError(HTTPStatus.BAD_REQUEST, "empty body: send the encoded image (JPEG, PNG, ...) as the request body")
        return self._batcher.submit(self._prepare(data, name, aligned, faces))


def _flag(value: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "true", "yes"):
        return True
    if lowered in ("0", "false", "no", ""):
        return False
    raise RequestError(HTTPStatus.BAD_REQUEST, f"aligned must be 0/1 or true/false, got {value!r}")


def make_handler(service: QualityService, max_bytes: int = DEFAULT_MAX_BYTES) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "faceqan"
        protocol_version = "HTTP/1.1"

        def _send(self, status: HTTPStatus, payload: dict) -> None:
            body = json.dumps(payload, allow_nan=False, default=str).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _error(self, status: HTTPStatus, message: str) -> None:
            self.close_connection = True  # an unread body must not be taken for the next request
            self._send(status, {"error": message})

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if urlsplit(self.path).path != "/health":
                return self._error(HTTPStatus.NOT_FOUND, "unknown path; use POST /score or GET /health")
            self._send(HTTPStatus.OK, {"status": "ok", "model": service.model.spec.name, "settings": service.settings})

        def do_POST(self) -> None:  # noqa: N802
            url = urlsplit(self.path)
            if url.path != "/score":
                return self._error(HTTPStatus.NOT_FOUND, "unknown path; use POST /score or GET /health")
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit():
                return self._error(HTTPStatus.LENGTH_REQUIRED, "send the image with a Content-Length header")
            if int(length) > max_bytes:
                return self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body of {length} bytes is over the limit of {max_bytes}")
            data = self.rfile.read(int(length))
            query = {key: values[-1] for key, values in parse_qs(url.query, keep_blank_values=True).items()}
            started = time.perf_counter()
            try:
                rows = service.score(data, query.get("name", "upload"), query.get("faces", "largest"), _flag(query.get("aligned", "0")))
            except RequestError as exc:
                return self._send(exc.status, {"error": str(exc)})
            rows = [{k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()} for row in rows]  # NaN is not JSON
            self._send(HTTPStatus.OK, {"results": rows, "seconds": round(time.perf_counter() - started, 4)})

        def do_PUT(self) -> None:  # noqa: N802
            self._error(HTTPStatus.METHOD_NOT_ALLOWED, "use POST /score or GET /health")

        do_DELETE = do_PATCH = do_PUT  # noqa: N815

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            if not getattr(self.server, "quiet", False):
                super().log_message(format, *args)

    return Handler


def make_server(service: QualityService, host: str = "127.0.0.1", port: int = 8080, max_bytes: int = DEFAULT_MAX_BYTES, quiet: bool = False) -> ThreadingHTTPServer:
    """An HTTP server for ``service`` (port 0: any free port); call ``serve_forever()``."""
    server = ThreadingHTTPServer((host, port), make_handler(service, max_bytes))
    server.quiet = quiet  # type: ignore[attr-defined]
    server.daemon_threads = True
    return server
