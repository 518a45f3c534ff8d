"""Score image files from Python, without writing a file."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from .algorithm import FaceQAN
from .faces.prepare import FacePolicy, FacePreparer
from .faces.video import expand_videos
from .models.spec import FaceModel
from .pipeline import BatchLimit, default_batch_size, faceqan_method, prepared_batches, score_batch


def score_paths(
    paths: Iterable[str | Path],
    model: FaceModel,
    scorer: FaceQAN | None = None,
    aligned: bool = False,
    faces: FacePolicy = "largest",
    batch_size: int | None = None,
    landmarks: str = "refined",
    frame_step: int = 1,
) -> list[dict]:
    """One result row per path (per face with ``faces='all'``): quality, its parts, landmarks, status,
    error. A video path gives a row per ``frame_step``-th frame, its path ``clip.mp4#frame=N``."""
    scorer = scorer or FaceQAN(model)
    method = faceqan_method(scorer)
    preparer = FacePreparer(model.spec, aligned=aligned, faces=faces, landmarks=landmarks)
    device = scorer.device
    batch_size = batch_size or default_batch_size(device, model.spec)
    rows: list[dict] = []
    limit = BatchLimit()
    for batch in prepared_batches(expand_videos([str(p) for p in paths], frame_step), preparer, batch_size):
        rows += score_batch(batch, method, device, limit)
    return rows
