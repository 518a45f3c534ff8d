"""Shared fixtures: where the evaluation data lives, small models, sample faces."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from faceqan import shared_data


def shared_or_skip(finder: Callable[[], Path]) -> Path:
    """The shared data ``finder`` locates, or a skip that says what is missing and where."""
    try:
        return finder()
    except shared_data.MissingData as missing:
        pytest.skip(str(missing))


@pytest.fixture(scope="session")
def lfw_root() -> Path:
    return shared_or_skip(shared_data.lfw)


@pytest.fixture(scope="session")
def lfw_aligned_root() -> Path:
    return shared_or_skip(shared_data.lfw_aligned)


@pytest.fixture(scope="session")
def dlib_reference():
    return np.load(shared_or_skip(shared_data.dlib_fixture))


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
