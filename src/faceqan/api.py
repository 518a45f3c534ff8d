"""Score image files from Python, without writing a file."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from .algorithm import FaceQAN
from .faces.prepare import FacePolicy, FacePreparer
from .faces.video import expand_videos
from .methods import FaceQANMethod, QualityMethod, create_method
from .models.spec import FaceModel
from .pipeline import score_stream


def as_method(method: str | QualityMethod | FaceQAN, model: FaceModel, **options) -> QualityMethod:
    """A quality method from its name (with ``options``), a method object, or a FaceQAN scorer."""
    if isinstance(method, str):
        return create_method(method, model, **options)
    if options:
        raise ValueError(f"options {sorted(options)} apply to a method given by name, not to a method object")
    return FaceQANMethod.from_scorer(method) if isinstance(method, FaceQAN) else method


def score_paths(
    paths: Iterable[str | Path],
    model: FaceModel,
    method: str | QualityMethod | FaceQAN = "faceqan",
    aligned: bool = False,
    faces: FacePolicy = "largest",
    batch_size: int | None = None,
    landmarks: str = "refined",
    frame_step: int = 1,
    **options,
) -> list[dict]:
    """One result row per path (per face with ``faces='all'``): quality, its parts, landmarks, status,
    error. ``method``: a name from ``faceqan.list_methods()`` (``options`` such as ``eps=`` go to
    it; defaults are the CLI's: the model's eps), a method object or a FaceQAN scorer. A video
    path gives a row per ``frame_step``-th frame, its path ``clip.mp4#frame=N``."""
    method = as_method(method, model, **options)
    preparer = FacePreparer(model.spec, aligned=aligned, faces=faces, landmarks=landmarks)
    inputs = expand_videos([str(p) for p in paths], frame_step)
    return [row for rows in score_stream(inputs, preparer, method, batch_size or method.default_batch_size()) for row in rows]
