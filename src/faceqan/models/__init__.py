"""Face recognition models behind one interface, and the registry that creates them by name."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .spec import FaceModel, ModelSpec

__all__ = ["FaceModel", "ModelSpec", "BUILTIN_MODELS", "DEFAULT_MODEL", "create_model", "list_models"]


def _dlib() -> tuple[ModelSpec, Callable[[], FaceModel]]:
    from .dlib import DLIB_SPEC, create_dlib

    return DLIB_SPEC, create_dlib


def _sface() -> tuple[ModelSpec, Callable[[], FaceModel]]:
    from .sface import SFACE_SPEC, create_sface

    return SFACE_SPEC, create_sface


BUILTIN_MODELS: dict[str, Callable[[], tuple[ModelSpec, Callable[[], FaceModel]]]] = {"dlib": _dlib, "sface": _sface}
DEFAULT_MODEL = "dlib"


def list_models() -> list[ModelSpec]:
    """Specs of the built-in models."""
    return [entry()[0] for entry in BUILTIN_MODELS.values()]


def create_model(name: str = DEFAULT_MODEL, device: str = "cpu", **file_options) -> FaceModel:
    """A built-in model by name, or a model file (ONNX, TorchScript, IResNet state dict with
    ``arch=``; see ``custom.load_model_file`` for the options), in eval mode on ``device``."""
    if name in BUILTIN_MODELS:
        if file_options:
            raise ValueError(f"options {sorted(file_options)} apply to model files, not to the built-in {name!r}")
        return BUILTIN_MODELS[name]()[1]().to(device).eval()
    if Path(name).suffix or Path(name).exists():
        from .custom import load_model_file

        return load_model_file(name, **file_options).to(device).eval()
    raise ValueError(f"unknown model {name!r}: built-in models are {', '.join(BUILTIN_MODELS)}, or give a model file path")
