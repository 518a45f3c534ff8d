"""Faces followed across frames: one track per person, kept through short misses.

Each frame's faces go to the open tracks in two rounds, each a Hungarian assignment:
1. by appearance, anywhere in the frame: a face and a track whose embeddings (from the FR model
   that scores the faces) have a cosine similarity of at least ``similarity`` (per built-in model:
   what 1 in 1,000 LFW impostor pairs reach), taken from the track's best face, its last face or
   the mean of its faces, whichever is closest; the most similar pairs first;
2. by place, for faces and tracks left over: a face whose box overlaps the track's last box
   (IoU >= ``min_iou``) and whose similarity is at least ``near`` (per built-in model: what 3 in 10
   impostor pairs reach; blurred or noisy faces of one person fall below ``similarity``), the
   largest overlaps first.
A face left over starts a track. A track ends once ``max_gap`` seconds pass without a face of
it. People who trade places are told apart by round 1; a person whose face is too degraded to be
recognised keeps the track by round 2 as long as they do not jump.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

# Cosine similarities at which LFW impostor pairs reach FMR 1e-3 and 0.3 (300 images of pairsDevTest,
# refined landmarks; same-person median: dlib 0.954, SFace 0.688).
SIMILARITY = {"dlib": (0.925, 0.853), "sface": (0.386, 0.151)}


@dataclass
class TrackingSettings:
    similarity: float
    near: float
    min_iou: float = 0.3
    max_gap: float = 1.0  # seconds

    @classmethod
    def for_model(cls, model_name: str, similarity: float | None = None, **given) -> TrackingSettings:
        """The settings of a built-in model, or of any model with ``similarity`` given (then
        ``near`` is ``similarity - (1 - similarity)``, as for dlib)."""
        if similarity is None:
            if model_name not in SIMILARITY:
                raise ValueError(
                    f"no tracking similarity is known for the model {model_name!r}: pass --track-similarity, the cosine "
                    "similarity at which two of its embeddings are one person (e.g. its verification threshold)"
                )
            return cls(*SIMILARITY[model_name], **given)
        if not -1 < similarity < 1:
            raise ValueError(f"the tracking similarity is a cosine in (-1, 1), not {similarity}")
        return cls(similarity, similarity - (1 - similarity), **given)


@dataclass
class Track:
    """A person followed so far: ``best`` and ``last`` embeddings (unit), last box and time."""

    id: int
    best: np.ndarray
    last: np.ndarray
    total: np.ndarray  # sum of its faces' unit embeddings (the direction of their mean)
    box: tuple[float, float, float, float]
    seen: float
    best_quality: float
    faces: int = 1
    first: float = field(default=0.0)


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    height = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    inter = max(0.0, width) * max(0.0, height)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


class Tracker:
    """Assigns each frame's faces to tracks; ``update`` returns the tracks that ended."""

    def __init__(self, settings: TrackingSettings) -> None:
        self.settings = settings
        self.active: list[Track] = []
        self._next_id = 0

    def update(self, time: float, boxes: list, embeddings: np.ndarray, qualities: list[float]) -> tuple[list[int], list[Track]]:
        """The track id of each face of the frame at ``time``, and the tracks that ended before it."""
        ended = [t for t in self.active if time - t.seen > self.settings.max_gap]
        self.active = [t for t in self.active if time - t.seen <= self.settings.max_gap]
        embeddings = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12) if len(boxes) else embeddings
        ids = [-1] * len(boxes)
        if self.active and boxes:
            for row, column in self._assign(boxes, embeddings):
                track = self.active[row]
                ids[column] = track.id
                track.last, track.box, track.seen, track.faces = embeddings[column], tuple(boxes[column]), time, track.faces + 1
                track.total = track.total + embeddings[column]
                if qualities[column] > track.best_quality:
                    track.best, track.best_quality = embeddings[column], qualities[column]
        for column, box in enumerate(boxes):
            if ids[column] < 0:
                track = Track(self._next_id, embeddings[column], embeddings[column], embeddings[column].copy(), tuple(box), time, qualities[column], first=time)
                self._next_id += 1
                self.active.append(track)
                ids[column] = track.id
        return ids, ended

    def _assign(self, boxes: list, embeddings: np.ndarray) -> list[tuple[int, int]]:
        """(track row, face column) pairs: round 1 by appearance, round 2 by place."""
        settings = self.settings
        references = [np.stack([getattr(t, name) for t in self.active]) for name in ("best", "last", "total")]
        references[2] = references[2] / np.maximum(np.linalg.norm(references[2], axis=1, keepdims=True), 1e-12)
        similarity = np.max([reference @ embeddings.T for reference in references], axis=0)
        overlap = np.array([[iou(t.box, tuple(b)) for b in boxes] for t in self.active])
        pairs = _matches(similarity, similarity >= settings.similarity)
        rows, columns = {r for r, _ in pairs}, {c for _, c in pairs}
        free = np.ones_like(overlap, bool)
        free[list(rows), :] = False
        free[:, list(columns)] = False
        return pairs + _matches(overlap, free & (overlap >= settings.min_iou) & (similarity >= settings.near))

    def finish(self) -> list[Track]:
        """Every track still open (the source ended)."""
        ended, self.active = self.active, []
        return ended


def _matches(gain: np.ndarray, allowed: np.ndarray) -> list[tuple[int, int]]:
    """The allowed (row, column) pairs of largest total gain, each row and column used once."""
    if not allowed.any():
        return []
    rows, columns = linear_sum_assignment(np.where(allowed, gain, -1e6), maximize=True)
    return [(r, c) for r, c in zip(rows, columns) if allowed[r, c]]
