"""What the student sees of a face: the frozen FR model's intermediate feature maps, pooled,
from the same single forward pass that gives the embedding.

Any model works: forward hooks catch every 4-D output of its sub-modules (an ONNX graph's
node outputs through ``OnnxModule.tap``); of each distinct (C, H, W) shape, the last one
computed is kept (the end of each stage), and each kept map gives its channel means (global
average pooling) and the log of its root-mean-square. With the normalised embedding and the
log of its norm these form the feature vector (FROQ, IJCB 2025, found such intermediate
statistics predictive of quality).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from ..models.onnx_module import OnnxModule


@contextmanager
def _tapped(model: nn.Module, seen: list[torch.Tensor]):
    """While open, every 4-D tensor ``model`` computes is appended to ``seen``."""

    def keep(tensor: object) -> None:
        if isinstance(tensor, torch.Tensor) and tensor.ndim == 4:
            seen.append(tensor)

    onnx_modules = [m for m in model.modules() if isinstance(m, OnnxModule)]
    handles = [m.register_forward_hook(lambda _m, _i, out: keep(out)) for m in model.modules() if not isinstance(m, OnnxModule)]
    for module in onnx_modules:
        module.tap = keep
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        for module in onnx_modules:
            module.tap = None


def stage_maps(seen: list[torch.Tensor]) -> list[torch.Tensor]:
    """Of the 4-D tensors in order of computation, the last of each distinct (C, H, W) shape."""
    last: dict[tuple[int, ...], int] = {}
    for index, tensor in enumerate(seen):
        last[tuple(int(size) for size in tensor.shape[1:])] = index  # ints: traced sizes are tensors (ONNX export)
    return [seen[i] for i in sorted(last.values())]


def features_and_embedding(model: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, F) features and (N, D) embeddings of aligned faces in [-1, 1], in one forward pass."""
    seen: list[torch.Tensor] = []
    with torch.no_grad(), _tapped(model, seen):
        embedding = model(images)
    parts = []
    for stage in stage_maps(seen):
        stage = stage.float()
        parts.append(stage.mean(dim=(2, 3)))
        parts.append(stage.pow(2).mean(dim=(1, 2, 3)).clamp_min(1e-12).sqrt().log().unsqueeze(1))
    norm = embedding.norm(dim=1, keepdim=True)
    parts += [F.normalize(embedding, dim=1), norm.clamp_min(1e-12).log()]
    return torch.cat(parts, dim=1), embedding


def stage_log_norms(model: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, stages) log root-mean-square activation of each stage map, and (N, D) embeddings, in one
    forward pass (FROQ's activation norms, per element so that stages of any size compare)."""
    seen: list[torch.Tensor] = []
    with torch.no_grad(), _tapped(model, seen):
        embedding = model(images)
    norms = [stage.float().pow(2).mean(dim=(1, 2, 3)).clamp_min(1e-12).sqrt().log() for stage in stage_maps(seen)]
    return torch.stack(norms, dim=1), embedding
