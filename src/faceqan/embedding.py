"""Embeddings of image files with an FR model, through the same preparation as scoring."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from .faces.prepare import FacePreparer
from .models.spec import FaceModel
from .pipeline import BatchLimit, Method, prepared_batches, score_batch


def embedding_method(model: FaceModel) -> Method:
    """The model's embedding as a scoring method (one ``embedding`` column per face)."""

    def method(images: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            return {"embedding": model(images).cpu()}

    return method


def embed_paths(
    paths: Iterable[str], model: FaceModel, preparer: FacePreparer, batch_size: int = 32, device: str = "cpu"
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Embedding of the first face row of each path, and the error of each path that has none."""
    embeddings: dict[str, np.ndarray] = {}
    errors: dict[str, str] = {}
    method, limit = embedding_method(model), BatchLimit()
    for faces in prepared_batches(paths, preparer, batch_size):
        for row in score_batch(faces, method, device, limit):
            if row["face"] != 0:
                continue
            if row["status"] == "ok":
                embeddings[row["path"]] = np.asarray(row["embedding"], np.float32)
            else:
                errors[row["path"]] = f"{row['status']}: {row['error']}"
    return embeddings, errors
