"""The scoring core of ``faceqan serve``, free of HTTP: uploads in, result rows out.

One model serves every request. Each request decodes and detects in its caller's thread;
the faces of concurrent requests are scored together in batches of up to ``max_batch``
(faceqan/batcher.py), so a GPU is not left idle by one-face requests, and at most
``max_queue`` faces wait: beyond that ``score`` raises Overloaded instead of queueing. A
request's faces (every file of a multipart upload, every face with ``faces=all``) are one job,
admitted whole when nothing waits, up to ``max_request_faces`` (413 beyond).
An image that cannot be decoded or holds no face is a row with its status, not an error.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from http import HTTPStatus

from ..batcher import Batcher, Cancelled
from ..faces.prepare import FACE_POLICIES, FacePreparer, PreparedFace
from ..methods import QualityMethod
from ..models.spec import FaceModel
from ..pipeline import BatchLimit, score_batch

MAX_IDLE_PREPARERS = 8  # kept per face option (aligned, faces) between requests
MAX_REQUEST_FACES = 64  # faces one request may bring (413 beyond): the one place this default is written


def _png_data_url(rgb) -> str:
    import base64

    import cv2

    png = cv2.imencode(".png", rgb[:, :, ::-1])[1]  # OpenCV writes BGR
    return "data:image/png;base64," + base64.b64encode(png.tobytes()).decode()


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
        max_batch: int | None = None, max_wait: float = 0.005, max_queue: int | None = None,
        on_batch: Callable[[int], None] | None = None, max_request_faces: int = MAX_REQUEST_FACES, **preparer_options,
    ) -> None:  # fmt: skip
        self.model, self.method, self.settings = model, method, settings
        self.max_request_faces = max_request_faces
        self.draining = False  # set on SIGTERM (service.server): /ready answers 503 while requests are still served
        self.preparer_options = preparer_options
        # Detectors keep state, so each request borrows an idle preparer (made on demand, kept
        # for the next request: new threads come with every connection, a detector costs a load).
        self._idle: dict[tuple[bool, str], queue.SimpleQueue[FacePreparer]] = {}
        self._idle_lock = threading.Lock()
        self._limit = BatchLimit()  # used by the batcher's one thread only
        self._batcher: Batcher[PreparedFace, dict] = Batcher(
            self._score_faces, max_batch or method.default_batch_size(), max_wait, max_queue, on_batch
        )

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
            if idle.qsize() < MAX_IDLE_PREPARERS:  # a burst's extra detectors are let go, not kept for ever
                idle.put(preparer)

    def new_preparer(self, aligned: bool, faces: str) -> FacePreparer:
        return FacePreparer(self.model.spec, aligned, faces, **self.preparer_options)  # type: ignore[arg-type]

    @property
    def ready(self) -> bool:
        """Whether requests can be scored now (the batcher's worker is running)."""
        return self._batcher.alive

    @property
    def full(self) -> bool:
        """Whether as many faces wait as ``max_queue`` allows: a new request would get 503."""
        return self._batcher.max_pending is not None and self._batcher.pending >= self._batcher.max_pending

    @property
    def queued(self) -> int:
        """Faces handed in and not yet scored."""
        return self._batcher.pending

    def close(self) -> None:
        """Stop the scoring thread once the requests handed in are done."""
        self._batcher.close()

    def explain(self, data: bytes, name: str = "upload", aligned: bool = False, cancelled: threading.Event | None = None) -> bytes:
        """The noise-map panel (PNG) of the largest face of ``data``; RequestError 422 when it has none."""
        import io

        from ..explain.panel import render_panel
        from ..pipeline import chips_to_tensor

        scorer = getattr(self.method, "scorer", None)
        if scorer is None:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"/explain shows FaceQAN's adversarial noise; this service scores with {self.method.name}")
        if not data:
            raise RequestError(HTTPStatus.BAD_REQUEST, "empty body: send the encoded image as the request body")
        face = self._prepare(data, name, aligned, "largest")[0]
        if cancelled is not None and cancelled.is_set():  # the attack itself runs to its end
            raise Cancelled("the request was given up while its image was decoded")
        if face.chip is None:
            raise RequestError(HTTPStatus.UNPROCESSABLE_ENTITY, f"{face.status}: {face.error}")
        parts, perturbation = scorer.explain(chips_to_tensor([face.chip]))
        values = {key: float(getattr(parts, key)[0]) for key in ("quality", "q_adv", "flip_sim", "mean_sim", "std_sim")}
        buffer = io.BytesIO()
        render_panel(face.chip, perturbation[0].numpy(), values, name, buffer)
        return buffer.getvalue()

    def prepare(self, data: bytes, name: str = "upload", faces: str = "largest", aligned: bool = False, cancelled: threading.Event | None = None) -> list:
        """The faces of the encoded image ``data``, decoded, found and aligned (one per row to come);
        Cancelled once ``cancelled`` is set when decoding ends."""
        if faces not in FACE_POLICIES:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"faces must be one of {', '.join(FACE_POLICIES)}, got {faces!r}")
        if not data:
            raise RequestError(HTTPStatus.BAD_REQUEST, "empty body: send the encoded image (JPEG, PNG, ...) as the request body")
        prepared = self._prepare(data, name, aligned, faces)
        if cancelled is not None and cancelled.is_set():
            raise Cancelled("the request was given up while its image was decoded")
        return prepared

    def score_prepared(self, prepared: list, cancelled: threading.Event | None = None, chips: bool = False) -> list[dict]:
        """One row per prepared face, all of one request scored as one job (admitted whole when the
        queue is idle); RequestError 413 past ``max_request_faces``; Cancelled once ``cancelled`` is
        set before its batch starts. ``chips``: each row also carries ``chip_png``, the aligned face
        the model saw as a PNG data URL (None without one)."""
        if len(prepared) > self.max_request_faces:
            raise RequestError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"{len(prepared)} faces in one request; at most {self.max_request_faces} (--max-request-faces): send fewer images per request",
            )
        rows = self._batcher.submit(prepared, cancelled)
        if chips:
            for row, face in zip(rows, prepared):
                row["chip_png"] = _png_data_url(face.chip) if face.chip is not None else None
        return rows

    def score(self, data: bytes, name: str = "upload", faces: str = "largest", aligned: bool = False, cancelled: threading.Event | None = None) -> list[dict]:
        """One row per face of the encoded image ``data``; Cancelled once ``cancelled`` is set, at the
        next boundary (after decoding, or before its batch is scored)."""
        return self.score_prepared(self.prepare(data, name, faces, aligned, cancelled), cancelled)
