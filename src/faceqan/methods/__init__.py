"""Quality methods behind one interface (``QualityMethod``), created by name with
``create_method(name, model, **options)``; defaults come from the model's spec.

    >>> method = create_method("faceqan", model)          # eps: the model's own
    >>> method(aligned)["quality"]                         # (N, 3, S, S) in [-1, 1] -> (N,)
"""

from __future__ import annotations

import inspect

from torch import nn

from ..scale import builtin_scale
from .base import QualityMethod
from .baselines import EmbeddingNorm, FlipSimilarity, RandomQuality, SerFiq, Sharpness
from .faceqan_method import FaceQANMethod
from .froq import FroqMethod
from .student import StudentMethod

__all__ = ["QualityMethod", "FaceQANMethod", "FroqMethod", "StudentMethod", "METHODS", "create_method", "given_options", "list_methods", "register_method", "score_setting_keys"]

METHODS: dict[str, type[QualityMethod]] = {}


def register_method(cls: type[QualityMethod]) -> type[QualityMethod]:
    """Make ``cls`` available to ``create_method`` (and so to every command) under ``cls.name``."""
    METHODS[cls.name] = cls
    return cls


for _cls in (FaceQANMethod, StudentMethod, FroqMethod, SerFiq, FlipSimilarity, EmbeddingNorm, Sharpness, RandomQuality):
    register_method(_cls)


def list_methods() -> list[str]:
    return list(METHODS)


def score_setting_keys() -> tuple[str, ...]:
    """The one list of what decides a score in a run's settings, besides face preparation: the
    model's weights, the method, and the ``score_options`` of every registered method."""
    return ("model_sha256", "method", *sorted({key for cls in METHODS.values() for key in cls.score_options}))


def given_options(values: dict) -> dict:
    """Of ``values`` (a command line's, say), those that some registered method takes as an option."""
    accepted = {option for name in METHODS for option in method_options(name)}
    return {key: value for key, value in values.items() if key in accepted}


def method_options(name: str) -> list[str]:
    """The options ``create_method`` accepts for ``name``."""
    return [p for p in inspect.signature(METHODS[name].__init__).parameters if p not in ("self", "model")]


def create_method(name: str, model: nn.Module, **options) -> QualityMethod:
    """The quality method ``name`` bound to ``model``; options left out take the method's
    defaults (FaceQAN's eps: the model's own). Options that are None count as left out."""
    if name not in METHODS:
        raise ValueError(f"unknown quality method {name!r}; choose one of {', '.join(METHODS)}")
    given = {key: value for key, value in options.items() if value is not None}
    unknown = sorted(set(given) - set(method_options(name)))
    if unknown:
        accepted = ", ".join(method_options(name)) or "none"
        raise ValueError(f"quality method {name!r} takes no option {', '.join(unknown)} (its options: {accepted})")
    method = METHODS[name](model, **given)
    spec = getattr(model, "spec", None)
    if spec is not None:
        method.scale = builtin_scale(spec.name, method.scale_settings())  # only where fitted for exactly these settings
    return method
