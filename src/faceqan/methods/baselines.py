"""Other quality methods on the same interface, so that every comparison uses the same model
and the same preprocessing.

- ``serfiq``: SER-FIQ (Terhorst et al., CVPR 2020): m stochastic forward passes with dropout
  on the input of the model's last linear layer; quality = 2 * sigmoid(-mean pairwise
  Euclidean distance of the normalised embeddings).
- ``flip``: s_f alone, the cosine between the embeddings of the face and its mirror.
- ``embedding_norm``: the L2 norm of the embedding (MagFace's quality; for other models a
  weak baseline).
- ``sharpness``: variance of the Laplacian of the grey chip.
- ``random``: uniform noise keyed on a hash of the image's pixels (reproducible per image).
FaceQAN without symmetry (q_adv, the paper's ablation) is a column of every FaceQAN run.
"""

from __future__ import annotations

import hashlib

import torch
import torch.nn.functional as F
from torch import nn

from .base import QualityMethod


class FlipSimilarity(QualityMethod):
    name = "flip"
    summary = "the flip similarity s_f alone (cosine of the face's and its mirror's embeddings)"

    def compute(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            both = self.model(torch.cat([images, images.flip(-1)]))
        n = images.shape[0]
        return {"quality": F.cosine_similarity(both[:n], both[n:])}


class EmbeddingNorm(QualityMethod):
    name = "embedding_norm"
    summary = "the L2 norm of the embedding (MagFace's quality)"

    def compute(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            return {"quality": self.model(images).norm(dim=1)}


class Sharpness(QualityMethod):
    """Needs no FR model; takes one to share the registry's signature."""

    name = "sharpness"
    summary = "variance of the Laplacian of the grey chip (no FR model involved)"
    _kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)

    def compute(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        grey = (0.299 * images[:, 0] + 0.587 * images[:, 1] + 0.114 * images[:, 2]).unsqueeze(1) * 127.5
        laplacian = F.conv2d(grey, self._kernel.to(images.device))
        return {"quality": laplacian.flatten(1).var(dim=1)}


def pixel_hash(image: torch.Tensor) -> int:
    """A 63-bit key from a hash of one image's pixels."""
    data = image.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little") >> 1


class RandomQuality(QualityMethod):
    name = "random"
    summary = "uniform noise keyed on the image's pixels (a baseline)"

    def __init__(self, model: nn.Module | None, seed: int = 0) -> None:
        super().__init__(model)
        self.seed = seed

    def compute(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        keys = [pixel_hash(image) for image in images]
        values = [torch.rand((), generator=torch.Generator().manual_seed((key + self.seed * 7919) % (1 << 63))) for key in keys]
        return {"quality": torch.stack(values)}

    score_options = ("seed",)

    def options(self) -> dict:
        return {"seed": self.seed}


def _last_linear(model: nn.Module) -> nn.Linear:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("SER-FIQ needs a model whose last layers include an nn.Linear (dlib, IResNet); this one has none")
    return linears[-1]


class SerFiq(QualityMethod):
    """SER-FIQ with dropout on the input of the last nn.Linear: the network below it runs once,
    the layers from it on run ``passes`` times (as one batch). The ``passes`` dropout masks
    come from ``seed`` and are the same for every image (as FaceQAN's noise)."""

    name = "serfiq"
    summary = "SER-FIQ (CVPR 2020): agreement of dropout passes through the last linear layer"

    def __init__(self, model: nn.Module, passes: int = 100, dropout: float = 0.5, seed: int = 0) -> None:
        super().__init__(model)
        if passes < 2 or not 0 < dropout < 1:
            raise ValueError(f"SER-FIQ needs passes >= 2 and dropout in (0, 1), got {passes} and {dropout}")
        self.layer = _last_linear(model)
        self.passes, self.dropout, self.seed = passes, dropout, seed

    def _masks(self, width: int, device: torch.device) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed % (1 << 63))
        return torch.bernoulli(torch.full((self.passes, width), 1 - self.dropout), generator=generator).to(device)

    def compute(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        def expand(_module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor]:
            features = inputs[0]
            dropped = features[:, None, :] * self._masks(features.shape[1], features.device) / (1 - self.dropout)
            return (dropped.flatten(0, 1),)

        handle = self.layer.register_forward_pre_hook(expand)
        try:
            with torch.no_grad():
                embeddings = self.model(images)
        finally:
            handle.remove()
        embeddings = F.normalize(embeddings.view(images.shape[0], self.passes, -1), dim=2)
        # The paper's 2 / m^2 * sum over i < j equals the sum over all (i, j) / m^2.
        spread = torch.cdist(embeddings, embeddings).sum(dim=(1, 2)) / self.passes**2
        return {"quality": 2 * torch.sigmoid(-spread)}

    score_options = ("passes", "dropout", "seed")

    def options(self) -> dict:
        return {"passes": self.passes, "dropout": self.dropout, "seed": self.seed}
