"""faceqan: face image quality assessment through adversarial noise exploration.

    >>> import faceqan
    >>> model = faceqan.create_model("dlib")
    >>> method = faceqan.create_method("faceqan", model)   # the model's eps (dlib 0.01), l 5, k 10, p 5
    >>> method(aligned_batch)["quality"]                  # (N, 3, 150, 150) in [-1, 1]
    >>> rows = faceqan.score_paths(["face.jpg"], model)    # detection and alignment included

The names below are imported when first used, so that ``import faceqan`` (and ``FaceQAN`` on
tensors) loads neither OpenCV nor SciPy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .version import __version__

# Public name -> the module that defines it.
_EXPORTS = {
    "FaceQAN": "algorithm", "QualityParts": "algorithm", "score_paths": "api",
    "QualityMethod": "methods", "create_method": "methods", "list_methods": "methods", "register_method": "methods",
    "FaceModel": "models", "ModelSpec": "models", "create_model": "models", "list_models": "models", "pick": "bestshots",
}  # fmt: skip

__all__ = [
    "FaceQAN", "QualityParts", "QualityMethod", "create_method", "list_methods", "register_method",
    "FaceModel", "ModelSpec", "create_model", "list_models", "pick", "score_paths", "__version__",
]  # fmt: skip (the names of _EXPORTS, written out for static tools)

if TYPE_CHECKING:
    from .algorithm import FaceQAN, QualityParts
    from .api import score_paths
    from .bestshots import pick
    from .methods import QualityMethod, create_method, list_methods, register_method
    from .models import FaceModel, ModelSpec, create_model, list_models


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'faceqan' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value  # once imported, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
