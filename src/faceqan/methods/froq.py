"""FROQ as a quality method: one forward pass, the standardised log activation norms of a few
stage maps chosen per model (faceqan/froq/), averaged with their signs. Training-free."""

from __future__ import annotations

import hashlib

import torch
from torch import nn

from ..froq.layers import FroqLayersError, builtin_layers, load_layers
from ..student.features import stage_log_norms
from .base import QualityMethod, file_for_model


class FroqMethod(QualityMethod):
    """``froq_layers``: a file from ``faceqan calibrate-froq``; default: the one shipped for the model."""

    name = "froq"
    summary = "FROQ: activation norms of a few intermediate layers chosen per model on pseudo-labels (one pass, no training)"
    columns = ("quality",)
    score_options = ("froq_layers_sha256",)

    def __init__(self, model: nn.Module, froq_layers: str | None = None) -> None:
        super().__init__(model)
        path, weights = file_for_model(model, froq_layers, builtin_layers, FroqLayersError, "froq", "FROQ layers are", "choose them with `faceqan calibrate-froq` and pass --froq-layers FILE")
        self.path = path
        self.source = froq_layers or f"built-in {path.name}"  # what reports name: no machine's install path
        self.layers = load_layers(path, weights)
        self.sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
        self._chosen = torch.tensor(self.layers.chosen)
        self._weights = torch.tensor([sign / std for sign, std in zip(self.layers.signs, self.layers.std)], dtype=torch.float64)
        self._mean = torch.tensor(self.layers.mean, dtype=torch.float64)
        self.model.eval().requires_grad_(False)

    def default_batch_size(self) -> int:
        return 64 if self.device.type != "cpu" else 16

    def compute(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        norms, embedding = stage_log_norms(self.model, images)
        if norms.shape[1] != self.layers.stages:
            raise FroqLayersError(f"{self.path}: chosen among {self.layers.stages} stage maps, but the model gives {norms.shape[1]}")
        picked = norms.cpu().double()[:, self._chosen]
        return {"quality": ((picked - self._mean) * self._weights).mean(dim=1), "embedding": embedding}

    def options(self) -> dict:
        return {"froq_layers": self.source, "froq_layers_sha256": self.sha256}

    def evaluation_columns(self) -> dict[str, str]:
        return {"froq": "quality"}
