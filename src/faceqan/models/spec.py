"""An FR network behind faceqan's common interface, with the input spec (``faceqan.spec``) it carries."""

from __future__ import annotations

import hashlib

import torch
from torch import nn

from ..spec import ModelSpec, arcface_spec

__all__ = ["FaceModel", "ModelSpec", "arcface_spec"]


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
