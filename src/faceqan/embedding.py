"""Embeddings of image files with an FR model, through the same preparation as scoring."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from .faces.prepare import FacePreparer
from .models.spec import FaceModel
from .pipeline import chips_to_tensor, prepared_batches


def embed_paths(
    paths: Iterable[str], model: FaceModel, preparer: FacePreparer, batch_size: int = 32, device: str = "cpu"
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Embedding of the first face row of each path, and the error of each path that has none."""
    embeddings: dict[str, np.ndarray] = {}
    errors: dict[str, str] = {}
    for faces in prepared_batches(paths, preparer, batch_size):
        faces = [face for face in faces if face.face == 0]
        for face in faces:
            if face.chip is None:
                errors[face.path] = f"{face.status}: {face.error}"
        ok = [face for face in faces if face.chip is not None]
        if ok:
            with torch.no_grad():
                vectors = model(chips_to_tensor([face.chip for face in ok]).to(device)).cpu().numpy()
            embeddings.update({face.path: vector for face, vector in zip(ok, vectors)})
    return embeddings, errors
