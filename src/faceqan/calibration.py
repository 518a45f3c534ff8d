"""Choose FaceQAN's eps for a model by the attack's strength, not by guesswork.

The paper's eps = 0.001 was tuned for insightface ResNet-100 models; other models react to
the same pixel budget very differently (at 0.001 dlib's and SFace's embeddings barely move,
median mean_sim 0.999 and 0.998, so Q ranks faces like the flip similarity alone). The rule
here is model-independent: pick the eps at which the attack lowers the median mean_sim of a
calibration set of faces to a target. The default target, 0.96, is what dlib's eps 0.01 gives
on LFW View 1, and 0.01 is the eps the View 1 ERC study chose for dlib (docs/algorithm.md, "eps per model").

The search works on log eps against log(1 - median mean_sim), which is nearly linear (the
drift grows like a power of eps): a secant step from the last two measurements, the first
step assuming the drift grows with eps squared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from .algorithm import FaceQAN, Variant

DEFAULT_TARGET_SIMILARITY = 0.96
EPS_RANGE = (1e-5, 0.5)


@dataclass
class Calibration:
    """The chosen eps, the median mean_sim it gives, and every (eps, median mean_sim) tried."""

    eps: float
    similarity: float
    target: float
    tried: list[tuple[float, float]] = field(default_factory=list)


def median_mean_similarity(model: nn.Module, faces: torch.Tensor, eps: float, steps: int, copies: int, variant: Variant, seed: int, batch_size: int) -> float:
    """Median over ``faces`` of FaceQAN's mean_sim at ``eps``."""
    scorer = FaceQAN(model, eps, steps, copies, 5, variant, seed)
    values = torch.cat([scorer(faces[i : i + batch_size]).mean_sim for i in range(0, faces.shape[0], batch_size)])
    return float(values.median())


def calibrate_eps(
    model: nn.Module,
    faces: torch.Tensor,
    target_similarity: float = DEFAULT_TARGET_SIMILARITY,
    start_eps: float = 0.001,
    steps: int = 5,
    copies: int = 10,
    variant: Variant = "paper",
    seed: int = 0,
    tolerance: float = 0.1,
    max_rounds: int = 6,
    batch_size: int = 1,
) -> Calibration:
    """The eps whose median mean_sim over ``faces`` (aligned, (N, 3, S, S) in [-1, 1]) is
    ``target_similarity``, to ``tolerance`` in log(1 - similarity) (10%: 0.96 +- 0.004)."""
    if not 0 < target_similarity < 1:
        raise ValueError(f"target similarity must lie in (0, 1), got {target_similarity}")
    if faces.ndim != 4 or faces.shape[0] == 0:
        raise ValueError(f"need a batch of aligned faces (N, 3, S, S), got shape {tuple(faces.shape)}")
    goal = math.log(1 - target_similarity)
    low, high = (math.log(v) for v in EPS_RANGE)
    tried: list[tuple[float, float]] = []
    points: list[tuple[float, float]] = []  # (log eps, log drift)
    log_eps = math.log(start_eps)
    for _ in range(max_rounds):
        eps = math.exp(log_eps)
        similarity = median_mean_similarity(model, faces, eps, steps, copies, variant, seed, batch_size)
        tried.append((eps, similarity))
        drift = max(1 - similarity, 1e-12)
        points.append((log_eps, math.log(drift)))
        if abs(points[-1][1] - goal) <= tolerance:
            break
        if len(points) == 1:
            slope = 2.0
        else:
            (x0, y0), (x1, y1) = points[-2], points[-1]
            # Bounded: a noisy pair of measurements must not send eps to the edge of the range.
            slope = min(max((y1 - y0) / (x1 - x0), 0.5), 4.0) if x1 != x0 else 2.0
        log_eps = min(max(points[-1][0] + (goal - points[-1][1]) / slope, low), high)
        if log_eps == points[-1][0]:  # stuck at the range's edge
            break
    best = min(range(len(points)), key=lambda i: abs(points[i][1] - goal))
    return Calibration(tried[best][0], tried[best][1], target_similarity, tried)
