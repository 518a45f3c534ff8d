"""A straight transcription of the official FaceQAN loop (LSIbabnikz/FaceQAN, src/), for
checking and timing our engine against it; not used for scoring.

One image at a time: k noisy copies in [0, 1] image units, l iterations of forward,
CosineEmbeddingLoss, ``loss.backward()`` (so parameter gradients are computed too, as in
the official code), full-eps sign steps, similarities recorded before each update; then a
separate forward of the image and its mirror for s_f; Q = (q_adv * s_f) ** p.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def official_quality(model: nn.Module, image01: torch.Tensor, noise: torch.Tensor, eps: float, iterations: int, p: float = 5) -> float:
    """Score one image (3, H, W) in [0, 1]; ``noise`` (k, 3, H, W) in U(-1, 1) replaces the
    official unseeded draw. ``model`` takes [-1, 1] input (the official normalisation layer)."""
    normalised = lambda x: model((x - 0.5) / 0.5)  # noqa: E731 - the official Normalize layer
    noisy_batch = torch.clamp(image01.unsqueeze(0) + noise * eps, -1.0, 1.0)
    base_emb = normalised(image01.unsqueeze(0))
    cos_loss = nn.CosineEmbeddingLoss()
    cos_sim = nn.CosineSimilarity(dim=1)
    target = torch.tensor([1.0], device=image01.device)
    similarities = []
    for _ in range(iterations):
        noisy_batch.requires_grad = True
        noisy_embs = normalised(noisy_batch)
        loss = cos_loss(base_emb, noisy_embs, target)
        model.zero_grad()
        loss.backward()
        noisy_batch = torch.clamp(noisy_batch + eps * noisy_batch.grad.data.sign(), -1.0, 1.0).detach()
        base_emb = base_emb.detach()
        similarities.append(cos_sim(base_emb, noisy_embs.detach()).cpu().numpy())
    embeds = normalised(torch.stack([image01, image01.flip(-1)])).detach()
    s_f = cos_sim(embeds[0:1], embeds[1:2]).item()
    return float((((1.0 + np.mean(similarities)) / 2.0) * np.clip(1.0 - np.std(similarities), 0.0, 1.0) * s_f) ** p)
