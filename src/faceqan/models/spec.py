"""What a face recognition model expects as input, carried by every model."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class ModelSpec:
    """Input specification of an FR model.

    ``template`` holds the chip positions of YuNet's five landmarks (right eye, left eye,
    nose tip, right and left mouth corner of the person) that alignment maps faces onto.
    """

    name: str
    input_size: int
    template: np.ndarray
    embedding_size: int
    colour_order: str
    normalisation: str
    weights: str
    template_note: str = ""

    def describe(self) -> str:
        return (
            f"{self.name}: {self.input_size}x{self.input_size} {self.colour_order}, {self.normalisation}, "
            f"{self.embedding_size}-d embedding; alignment: {self.template_note}; weights: {self.weights}"
        )


class FaceModel(nn.Module):
    """An FR network behind the common interface: RGB (N, 3, S, S) in [-1, 1] -> (N, D).

    ``to_network_input`` converts from [-1, 1] to what the wrapped network expects.
    """

    def __init__(self, network: nn.Module, spec: ModelSpec) -> None:
        super().__init__()
        self.network = network
        self.spec = spec

    def to_network_input(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(self.to_network_input(x))
