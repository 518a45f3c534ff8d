"""faceqan: face image quality assessment through adversarial noise exploration.

    >>> import faceqan
    >>> model = faceqan.create_model("dlib")
    >>> scorer = faceqan.FaceQAN(model)               # paper defaults: eps 0.001, l 5, k 10, p 5
    >>> parts = scorer(aligned_batch)                 # (N, 3, 150, 150) in [-1, 1]
    >>> rows = faceqan.score_paths(["face.jpg"], model)
"""

from __future__ import annotations

__version__ = "0.1.0"

from .algorithm import FaceQAN, QualityParts
from .api import score_paths
from .models import FaceModel, ModelSpec, create_model, list_models

__all__ = ["FaceQAN", "QualityParts", "FaceModel", "ModelSpec", "create_model", "list_models", "score_paths", "__version__"]
