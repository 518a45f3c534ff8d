"""faceqan: face image quality assessment through adversarial noise exploration.

    >>> import faceqan
    >>> model = faceqan.create_model("dlib")
    >>> method = faceqan.create_method("faceqan", model)   # the model's eps (dlib 0.01), l 5, k 10, p 5
    >>> method(aligned_batch)["quality"]                  # (N, 3, 150, 150) in [-1, 1]
    >>> rows = faceqan.score_paths(["face.jpg"], model)    # detection and alignment included
"""

from __future__ import annotations

__version__ = "0.2.0"

from .algorithm import FaceQAN, QualityParts
from .api import score_paths
from .methods import QualityMethod, create_method, list_methods, register_method
from .models import FaceModel, ModelSpec, create_model, list_models

__all__ = [
    "FaceQAN", "QualityParts", "QualityMethod", "create_method", "list_methods", "register_method",
    "FaceModel", "ModelSpec", "create_model", "list_models", "score_paths", "__version__",
]  # fmt: skip
