"""Score image files from Python, without writing a file."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from .algorithm import FaceQAN
from .faces.prepare import FacePolicy, FacePreparer
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
) -> list[dict]:
    """One result row per path (per face with ``faces='all'``): quality, its parts, status, error."""
    scorer = scorer or FaceQAN(model)
    method = faceqan_method(scorer)
    preparer = FacePreparer(model.spec, aligned=aligned, faces=faces, landmarks=landmarks)
    device = scorer.device
    batch_size = batch_size or default_batch_size(device)
    rows: list[dict] = []
    limit = BatchLimit()
    for batch in prepared_batches([str(p) for p in paths], preparer, batch_size):
        rows += score_batch(batch, method, device, limit)
    return rows
