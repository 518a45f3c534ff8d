"""Other quality methods on FaceQAN's interface (aligned (N, 3, S, S) in [-1, 1] -> columns),
so that every comparison uses the same model and the same preprocessing.

- ``serfiq``: SER-FIQ (Terhorst et al., CVPR 2020): m stochastic forward passes with
  dropout on the input of the model's last linear layer; quality = 2 * sigmoid(-mean
  pairwise Euclidean distance of the normalised embeddings).
- ``flip``: s_f alone, the cosine between the embeddings of the face and its mirror.
- ``embedding_norm``: the L2 norm of the embedding (MagFace's quality, for other models a
  weak baseline).
- ``sharpness``: variance of the Laplacian of the grey chip.
- ``random``: uniform noise keyed on the image's pixels (reproducible per image).
FaceQAN without symmetry (q_adv, the paper's ablation) is a column of every FaceQAN run.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .algorithm import image_keys
from .pipeline import Method

BASELINES = ("serfiq", "flip", "embedding_norm", "sharpness", "random")


def flip_method(model: nn.Module) -> Method:
    def method(images: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            both = model(torch.cat([images, images.flip(-1)]))
        n = images.shape[0]
        return {"quality": F.cosine_similarity(both[:n], both[n:]).cpu()}

    return method


def embedding_norm_method(model: nn.Module) -> Method:
    def method(images: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            return {"quality": model(images).norm(dim=1).cpu()}

    return method


def sharpness_method() -> Method:
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)

    def method(images: torch.Tensor) -> dict[str, torch.Tensor]:
        grey = (0.299 * images[:, 0] + 0.587 * images[:, 1] + 0.114 * images[:, 2]).unsqueeze(1) * 127.5
        laplacian = F.conv2d(grey, kernel.to(images.device))
        return {"quality": laplacian.flatten(1).var(dim=1).cpu()}

    return method


def random_method(seed: int = 0) -> Method:
    def method(images: torch.Tensor) -> dict[str, torch.Tensor]:
        keys = image_keys(images)
        values = [torch.rand((), generator=torch.Generator().manual_seed((key + seed * 7919) % (1 << 63))) for key in keys]
        return {"quality": torch.stack(values)}

    return method


def _last_linear(model: nn.Module) -> nn.Linear:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("SER-FIQ needs a model whose last layers include an nn.Linear (dlib, IResNet); this one has none")
    return linears[-1]


def serfiq_method(model: nn.Module, passes: int = 100, dropout: float = 0.5, seed: int = 0) -> Method:
    """SER-FIQ with dropout on the input of the last nn.Linear: the network below it runs
    once, the layers from it on run ``passes`` times (as one batch)."""
    layer = _last_linear(model)

    def method(images: torch.Tensor) -> dict[str, torch.Tensor]:
        keys = image_keys(images)

        def expand(_module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor]:
            features = inputs[0]
            masks = torch.stack(
                [torch.bernoulli(torch.full((passes, features.shape[1]), 1 - dropout), generator=torch.Generator().manual_seed((k + seed) % (1 << 63))) for k in keys]
            ).to(features.device)
            dropped = features[:, None, :] * masks / (1 - dropout)
            return (dropped.flatten(0, 1),)

        handle = layer.register_forward_pre_hook(expand)
        try:
            with torch.no_grad():
                embeddings = model(images)
        finally:
            handle.remove()
        embeddings = F.normalize(embeddings.view(images.shape[0], passes, -1), dim=2)
        # The paper's 2 / m^2 * sum over i < j equals the sum over all (i, j) / m^2.
        spread = torch.cdist(embeddings, embeddings).sum(dim=(1, 2)) / passes**2
        return {"quality": (2 * torch.sigmoid(-spread)).cpu()}

    return method


def create_baseline(name: str, model: nn.Module, seed: int = 0) -> Method:
    factories = {
        "serfiq": lambda: serfiq_method(model, seed=seed),
        "flip": lambda: flip_method(model),
        "embedding_norm": lambda: embedding_norm_method(model),
        "sharpness": sharpness_method,
        "random": lambda: random_method(seed),
    }
    if name not in factories:
        raise ValueError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)}")
    return factories[name]()
