"""Embeddings of faces with an FR model, through the same preparation and batch loop as scoring."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from .faces.prepare import FacePreparer
from .methods.base import QualityMethod
from .models.spec import FaceModel
from .pipeline import score_stream


class EmbeddingMethod(QualityMethod):
    """The model's embedding as one ``embedding`` column per face (not a quality: used by evaluate)."""

    name = "embedding"
    columns = ("embedding",)

    def compute(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            return {"embedding": self.model(images)}


def embed_paths(paths: Iterable[str], model: FaceModel, preparer: FacePreparer, batch_size: int = 32) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Embedding of the first face row of each path, and the error of each path that has none."""
    embeddings: dict[str, np.ndarray] = {}
    errors: dict[str, str] = {}
    for rows in score_stream(paths, preparer, EmbeddingMethod(model), batch_size):
        for row in rows:
            if row["face"] != 0:
                continue
            if row["status"] == "ok":
                embeddings[row["path"]] = np.asarray(row["embedding"], np.float32)
            else:
                errors[row["path"]] = f"{row['status']}: {row['error']}"
    return embeddings, errors
