"""Face recognition models behind one interface, and the registry that creates them by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .spec import FaceModel, ModelSpec

__all__ = ["FaceModel", "ModelSpec", "BUILTIN_MODELS", "create_model", "list_models"]


@dataclass(frozen=True)
class RegisteredModel:
    spec: ModelSpec
    factory: Callable[[], FaceModel]


def _dlib() -> RegisteredModel:
    from .dlib import DLIB_SPEC, create_dlib

    return RegisteredModel(DLIB_SPEC, create_dlib)


BUILTIN_MODELS: dict[str, Callable[[], RegisteredModel]] = {"dlib": _dlib}
DEFAULT_MODEL = "dlib"


def list_models() -> list[ModelSpec]:
    """Specs of the built-in models."""
    return [entry().spec for entry in BUILTIN_MODELS.values()]


def create_model(name: str = DEFAULT_MODEL, device: str = "cpu") -> FaceModel:
    """A built-in model by name, in eval mode on ``device``."""
    if name not in BUILTIN_MODELS:
        raise ValueError(f"unknown model {name!r}; built-in models: {', '.join(BUILTIN_MODELS)}")
    return BUILTIN_MODELS[name]().factory().to(device).eval()
