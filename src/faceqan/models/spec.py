"""What a face recognition model expects as input, carried by every model."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..faces.align import ARCFACE_112


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
    default_eps: float = 0.001  # FaceQAN's eps for this model (the paper's 0.001 unless measured: `faceqan calibrate`)
    # Score a CPU batch's images side by side, one thread each, by default (faceqan/lanes.py):
    # only where that measured faster; each image in flight holds its k copies' activations.
    cpu_lanes: bool = False

    def describe(self) -> str:
        size = f"{self.embedding_size}-d" if self.embedding_size else "?-d"
        order = "BGR" if self.bgr else "RGB"
        text = (
            f"{self.name}: {self.input_size}x{self.input_size} {order}, network input (pixel - {self.input_mean:g}) / "
            f"{self.input_std:g}, {size} embedding; FaceQAN eps {self.default_eps:g}; weights: {self.weights}"
        )
        text += f"; {self.notes}" if self.notes else ""
        return text + ("; on the CPU, batches scored side by side (one image per core)" if self.cpu_lanes else "")


def arcface_spec(name: str, weights: str, input_size: int = 112, **kwargs) -> ModelSpec:
    """The insightface convention: ArcFace template (scaled to the input size), RGB, (x - 127.5) / 127.5."""
    template = ARCFACE_112 * (input_size / 112.0)
    return ModelSpec(name, input_size, template, kwargs.pop("embedding_size", None), weights, **kwargs)


class FaceModel(nn.Module):
    """An FR network behind the common interface: RGB (N, 3, S, S) in [-1, 1] -> (N, D)."""

    def __init__(self, network: nn.Module, spec: ModelSpec) -> None:
        super().__init__()
        self.network = network
        self.spec = spec
        self.scale = (127.5 / spec.input_std, (127.5 - spec.input_mean) / spec.input_std)
        self._fingerprint: str | None = None

    def fingerprint(self) -> str:
        """SHA-256 of the weights (every parameter and buffer, by name) and the input spec, in
        hex: keys caches and resumes, so results of other weights are never reused. Computed once."""
        if self._fingerprint is None:
            digest = hashlib.sha256(repr((self.spec.input_size, self.spec.input_mean, self.spec.input_std, self.spec.bgr)).encode())
            for name, tensor in sorted(self.state_dict().items()):
                digest.update(name.encode())
                digest.update(tensor.detach().to("cpu").contiguous().numpy().tobytes())
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # pixel = (x + 1) * 127.5, so (pixel - mean) / std = x * a + b.
        a, b = self.scale
        x = x * a + b if (a, b) != (1.0, 0.0) else x
        return self.network(x.flip(1) if self.spec.bgr else x)
