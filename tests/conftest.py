"""Shared fixtures: where the evaluation data lives, small models, sample faces."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

SHARED = Path(os.environ.get("FACEQAN_SHARED", Path(__file__).resolve().parents[2] / "shared"))
LFW = SHARED / "data" / "lfw"
FIXTURE = SHARED / "fixtures" / "dlib_reference.npz"


@pytest.fixture(scope="session")
def lfw_root() -> Path:
    if not (LFW / "pairs.txt").is_file():
        pytest.skip(f"LFW data not found at {LFW} (set FACEQAN_SHARED to the folder holding data/lfw)")
    return LFW


@pytest.fixture(scope="session")
def dlib_reference():
    if not FIXTURE.is_file():
        pytest.skip(f"dlib reference fixture not found at {FIXTURE} (set FACEQAN_SHARED)")
    return np.load(FIXTURE)


@pytest.fixture(scope="session")
def dlib_model():
    from faceqan.models import create_model

    return create_model("dlib")


@pytest.fixture(scope="session")
def sface_model():
    from faceqan.models import create_model

    return create_model("sface")


class TinyNet(nn.Module):
    """A small random conv net standing in for an FR model: (N, 3, 16, 16) -> (N, 8)."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.body = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 6, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 7 * 7, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


@pytest.fixture
def tiny_net() -> TinyNet:
    return TinyNet().eval()


@pytest.fixture
def tiny_images() -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.rand((5, 3, 16, 16), generator=generator) * 2 - 1
