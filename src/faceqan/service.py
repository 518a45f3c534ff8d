"""FaceQAN over HTTP, for enrolment gates and frame pickers: ``faceqan serve``.

    POST /score[?faces=largest|all|error&aligned=0|1&name=...]   body: the encoded image
    GET  /health

``/score`` answers 200 whenever the image was processed, with one row per face (the same
columns as ``faceqan score``: quality, its parts, status, error): an image that cannot be
decoded or holds no face is a row with its status, not an HTTP error. HTTP errors are for
bad requests: 400 (empty body, bad parameter), 404, 405, 411 (no length), 413 (body over
the limit). One model serves every request; requests are scored one at a time, each with
every core.
"""

from __future__ import annotations

import json
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from .faces.prepare import FACE_POLICIES, FacePreparer
from .models.spec import FaceModel
from .pipeline import Method, score_batch

DEFAULT_MAX_BYTES = 20 * 1024 * 1024


class RequestError(ValueError):
    """A request the service refuses, with the HTTP status that says why."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


class QualityService:
    """Scores uploaded images with one model; thread-safe (one request at a time)."""

    def __init__(self, model: FaceModel, method: Method, settings: dict, device: str = "cpu", **preparer_options) -> None:
        self.model, self.method, self.settings, self.device = model, method, settings, device
        self.preparer_options = preparer_options
        self._preparers: dict[tuple[bool, str], FacePreparer] = {}
        self._lock = threading.Lock()

    def _preparer(self, aligned: bool, faces: str) -> FacePreparer:
        key = (aligned, faces)
        if key not in self._preparers:
            self._preparers[key] = FacePreparer(self.model.spec, aligned, faces, **self.preparer_options)  # type: ignore[arg-type]
        return self._preparers[key]

    def score(self, data: bytes, name: str = "upload", faces: str = "largest", aligned: bool = False) -> list[dict]:
        """One row per face of the encoded image ``data``."""
        if faces not in FACE_POLICIES:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"faces must be one of {', '.join(FACE_POLICIES)}, got {faces!r}")
        if not data:
            raise RequestError(HTTPStatus.BAD_REQUEST, "empty body: send the encoded image (JPEG, PNG, ...) as the request body")
        with self._lock:
            prepared = self._preparer(aligned, faces).from_bytes(name, data)
            return score_batch(prepared, self.method, self.device)


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
