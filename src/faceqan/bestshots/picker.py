"""Best shots: each sampled frame's faces detected, aligned, scored and tracked; for each track
only its ``top`` best faces so far are held (the aligned crop and the whole frame), so memory
stays bounded on an endless source. A track is handed out when it ends.

With refined landmarks (the default, as ``faceqan score``), faces are first aligned with the
detector's own landmarks, which costs no extra detection; only a face that would enter its
track's best ``top`` is aligned again with refined landmarks and scored again, so every kept
shot has the score ``faceqan score`` gives that frame, at a fraction of the detections (three
per face otherwise: the 3-face clip of benchmarks/pick_speed.py ran at 21 fps, below real time).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ..faces.align import align_face
from ..faces.detect import Face
from ..faces.prepare import FacePreparer
from ..methods.base import QualityMethod
from ..models.spec import FaceModel
from ..pipeline import chips_to_tensor
from .sources import Frame, FrameSource
from .tracks import Track, Tracker, TrackingSettings


@dataclass
class Shot:
    """One face of a track: where and when, its scores, its aligned crop and its frame (RGB)."""

    frame: int
    time: float
    box: tuple[float, float, float, float]
    quality: float
    quality_0_100: float | None
    crop: np.ndarray
    image: np.ndarray


@dataclass
class PickedTrack:
    """A finished track of ``source`` with its best shots, best first (empty when none reached
    ``min_quality``; ``best_quality`` is then the best it saw)."""

    source: str
    track: int
    first_time: float
    last_time: float
    faces: int
    best_quality: float
    shots: list[Shot] = field(default_factory=list)


@dataclass
class PickCounts:
    frames: int = 0
    faces: int = 0
    failed_faces: int = 0  # detected faces the method could not score (their error is not a shot)
    short_tracks: int = 0  # tracks of fewer than min_track_faces faces, dropped (most are false detections)


class Picker:
    """Feeds frames of one source through detection, scoring and tracking."""

    def __init__(self, source: str, model: FaceModel, method: QualityMethod, preparer: FacePreparer, tracking: TrackingSettings,
                 top: int = 1, min_quality: float | None = None, min_track_faces: int = 3) -> None:  # fmt: skip
        if top < 1:
            raise ValueError(f"--top must be at least 1, not {top}")
        if min_track_faces < 1:
            raise ValueError(f"--min-track-faces must be at least 1, not {min_track_faces}")
        self.source, self.model, self.method, self.preparer = source, model, method, preparer
        self.refine = preparer.landmarks == "refined" and preparer.detector is not None
        # the first pass: the same detector settings, the detector's own landmarks
        self._first = FacePreparer(preparer.spec, faces="all", min_face_size=preparer.min_face_size, min_det_score=preparer.min_det_score,
                                   max_pixels=preparer.max_pixels, landmarks="single") if self.refine else preparer  # fmt: skip
        self.top, self.min_quality, self.min_track_faces = top, min_quality, min_track_faces
        self.tracker = Tracker(tracking)
        self.counts = PickCounts()
        self._shots: dict[int, list[tuple[float, int, Shot]]] = {}  # min-heap per track: the worst kept shot first

    def feed(self, frame: Frame) -> list[PickedTrack]:
        """Process one frame; the tracks that ended before it."""
        self.counts.frames += 1
        faces = [face for face in self._first.from_array(f"{self.source}#frame={frame.index}", frame.rgb) if face.chip is not None]
        chips = [face.chip for face in faces]
        quality, scaled, embeddings = self._score(chips)
        if embeddings is None:  # a method that does not embed the faces itself: one more forward pass
            embeddings = self._embeddings(chips)
        ok = np.isfinite(quality)
        self.counts.faces += len(faces)
        self.counts.failed_faces += int((~ok).sum())
        faces = [face for face, good in zip(faces, ok) if good]
        quality, scaled, embeddings = quality[ok], scaled[ok], embeddings[ok]
        ids, ended = self.tracker.update(frame.time, [face.box for face in faces], embeddings, quality.tolist())
        shots = [Shot(frame.index, frame.time, face.box, float(q), None if np.isnan(v) else float(v), face.chip, frame.rgb) for face, q, v in zip(faces, quality, scaled)]
        if self.refine:
            shots = self._refined([(track_id, shot) for track_id, shot in zip(ids, shots) if self._would_keep(track_id, shot.quality)], frame.rgb)
            ids = [track_id for track_id, _ in shots]
            shots = [shot for _, shot in shots]
        for track_id, shot in zip(ids, shots):
            self._keep(track_id, shot)
        return self._picked(ended)

    def _would_keep(self, track_id: int, quality: float) -> bool:
        """Whether a face of this first score enters its track's best ``top``."""
        heap = self._shots.get(track_id, [])
        return (self.min_quality is None or quality >= self.min_quality) and (len(heap) < self.top or quality > heap[0][0])

    def _refined(self, candidates: list[tuple[int, Shot]], rgb: np.ndarray) -> list[tuple[int, Shot]]:
        """The candidates aligned again with refined landmarks and scored again (one whose
        refinement finds no face keeps its first alignment and score, as ``faceqan score`` would)."""
        detector, spec = self.preparer.detector, self.preparer.spec
        assert detector is not None
        results, redo = list(candidates), []
        for index, (_, shot) in enumerate(candidates):
            points = detector.refine_landmarks(rgb, Face(shot.box, np.zeros((5, 2)), 1.0))
            if points is not None:
                redo.append((index, align_face(rgb, points, spec.template, spec.input_size)))
        if redo:
            quality, scaled, _ = self._score([crop for _, crop in redo])
            for (index, crop), q, v in zip(redo, quality, scaled):
                if np.isfinite(q):
                    track_id, shot = results[index]
                    results[index] = (track_id, replace(shot, crop=crop, quality=float(q), quality_0_100=None if np.isnan(v) else float(v)))
        return results

    def close(self) -> list[PickedTrack]:
        """The tracks still open (the source ended or was stopped)."""
        return self._picked(self.tracker.finish())

    def _score(self, chips: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Quality, 0-100 quality and embedding (None: the method has none) of each chip; a batch
        the model fails on gives NaN qualities."""
        if not chips:
            return np.zeros(0), np.zeros(0), np.zeros((0, 1), np.float32)
        images = chips_to_tensor(chips).to(self.method.device)
        try:
            columns, embeddings = self.method.score_and_embed(images)
        except (ValueError, RuntimeError):  # counted as failed faces; the frame's other work goes on
            return np.full(len(chips), np.nan), np.full(len(chips), np.nan), np.zeros((len(chips), 1), np.float32)
        quality = columns["quality"].double().numpy()
        scaled = columns["quality_0_100"].double().numpy() if "quality_0_100" in columns else np.full(len(chips), np.nan)
        return quality, scaled, None if embeddings is None else embeddings.numpy()

    def _embeddings(self, chips: list[np.ndarray]) -> np.ndarray:
        with torch.no_grad():
            return self.model(chips_to_tensor(chips).to(self.method.device)).float().cpu().numpy()

    def _keep(self, track_id: int, shot: Shot) -> None:
        if self.min_quality is not None and shot.quality < self.min_quality:
            return
        heap = self._shots.setdefault(track_id, [])
        entry = (shot.quality, -shot.frame, shot)  # equal quality: the earlier frame stays
        if len(heap) < self.top:
            heapq.heappush(heap, entry)
        elif entry[:2] > heap[0][:2]:
            heapq.heapreplace(heap, entry)

    def _picked(self, tracks: list[Track]) -> list[PickedTrack]:
        picked = []
        for track in tracks:
            kept = sorted(self._shots.pop(track.id, []), key=lambda entry: entry[:2], reverse=True)
            if track.faces < self.min_track_faces:
                self.counts.short_tracks += 1
                continue
            picked.append(PickedTrack(self.source, track.id, track.first, track.seen, track.faces, track.best_quality, [shot for *_, shot in kept]))
        return picked


def pick_source(source: FrameSource, picker: Picker) -> Iterator[PickedTrack]:
    """The tracks of one source as they end; on Ctrl-C the open ones are handed out first."""
    try:
        for frame in source:
            yield from picker.feed(frame)
    except KeyboardInterrupt:
        source.stop_reason = "stopped by Ctrl-C"
        source.close()
        yield from picker.close()
        raise
    yield from picker.close()


def pick(inputs: Iterable[str], model: FaceModel | str = "dlib", method: QualityMethod | str = "faceqan-student", top: int = 1,
         frame_step: int = 1, min_quality: float | None = None, track_similarity: float | None = None, fps: float | None = None,
         landmarks: str = "refined", min_track_faces: int = 3, **method_options) -> Iterator[PickedTrack]:  # fmt: skip
    """The best ``top`` faces of each person in videos, frame folders or live sources (camera
    index such as ``"0"``, or a stream URL), track by track as each ends."""
    from ..api import as_method
    from ..models import create_model

    model_name = model if isinstance(model, str) else model.spec.name
    model = create_model(model) if isinstance(model, str) else model
    method = as_method(method, model, **method_options)
    tracking = TrackingSettings.for_model(model_name, track_similarity)
    sources = [FrameSource(str(name), frame_step, fps) for name in inputs]  # every source checked before any work
    preparer = FacePreparer(model.spec, faces="all", landmarks=landmarks)
    for source in sources:
        yield from pick_source(source, Picker(source.name, model, method, preparer, tracking, top, min_quality, min_track_faces))
