"""FaceQAN (Babnik, Peer, Struc, ICPR 2022) on batches of aligned face tensors.

Input: a float tensor (N, 3, H, W), RGB, pixels in [-1, 1], aligned for the model, which
maps it to embeddings (N, D). No file I/O, no detection: see ``faceqan.pipeline`` for that.

Two variants:
- ``paper`` (section III): k noisy copies I* = clip(I + U(-eps, eps), -1, 1); l FGSM steps
  of eps / l on L = 1 - cos(M(I*), M(I)), clipped to [-1, 1]; S_i = cos of the k final
  adversarial examples; flip similarity s_f; Q = max(q_adv * s_f, 0) ** p.
- ``official`` (LSIbabnikz/FaceQAN, src/): eps acts on images in [0, 1]; full eps steps;
  similarities recorded before each update (l * k values, the last adversarial batch never
  scored); Q = (q_adv * s_f) ** p with s_f unclipped.

Noise: the k noise patterns come from a generator seeded by ``seed`` alone and every image
gets the same k patterns (common random numbers). So an image's score does not depend on
its batch, its device, or on the last bit of a pixel: a noise keyed on a hash of the pixels
(as before 0.2) turned a one-grey-level difference in two pixels, which OpenCV's SIMD paths
give the aligned chip on different CPUs, into a different noise draw and a score 0.017 away.
Shared noise also removes the noise draw's variance from comparisons between images.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, fields
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .lanes import CpuLanes

Variant = Literal["paper", "official"]
VARIANTS: tuple[str, ...] = ("paper", "official")


@dataclass(frozen=True)
class QualityParts:
    """FaceQAN's score and its parts, one value per image (1-D tensors on the CPU)."""

    quality: torch.Tensor
    mean_sim: torch.Tensor
    std_sim: torch.Tensor
    flip_sim: torch.Tensor
    q_adv: torch.Tensor

    @classmethod
    def concat(cls, parts: list[QualityParts]) -> QualityParts:
        return cls(*(torch.cat([getattr(p, f.name) for p in parts]) for f in fields(cls)))

    def rows(self) -> list[dict[str, float]]:
        """One dict per image, column name -> float."""
        columns = {f.name: getattr(self, f.name).tolist() for f in fields(self)}
        return [dict(zip(columns, values)) for values in zip(*columns.values())]


def aggregate(similarities: torch.Tensor, flip_sim: torch.Tensor, power: float, clip_flip: bool) -> QualityParts:
    """Eq. (4): q_adv = (mean(S) + 1) / 2 * clip(1 - std(S), 0, 1); Q = (q_adv * s_f) ** p.

    ``similarities`` is (N, n) with n similarities per image; std is the population one
    (numpy's default, as in the official code). With ``clip_flip`` the base q_adv * s_f is
    clipped at 0, so Q stays in [0, 1] as the paper states even when s_f < 0 (which an odd
    p would turn into a negative score and an even p into a high one).
    """
    mean = similarities.mean(dim=1)
    std = similarities.std(dim=1, correction=0)
    q_adv = (mean + 1) / 2 * (1 - std).clamp(0, 1)
    base = q_adv * flip_sim
    if clip_flip:
        base = base.clamp_min(0)
    return QualityParts(base**power, mean, std, flip_sim, q_adv)


def uniform_noise(shape: tuple[int, ...], seed: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """U(-1, 1) noise of ``shape`` (k, C, H, W) from a generator seeded by ``seed``: the k
    patterns every image gets. Drawn on the CPU, so the same seed gives the same noise on
    every device."""
    noise = torch.empty(shape)
    noise.uniform_(-1.0, 1.0, generator=torch.Generator().manual_seed(seed % (1 << 63)))
    return noise.to(device)


def model_device(model: nn.Module) -> torch.device:
    """Where a module's tensors live: its first parameter's or, for a module whose weights are
    all buffers, its first buffer's device (CPU for a module with neither)."""
    tensor = next(itertools.chain(model.parameters(), model.buffers()), None)
    return tensor.device if tensor is not None else torch.device("cpu")


PAPER_EPS = 0.001


class UncalibratedEpsError(ValueError):
    """A model file with no measured eps was to be scored at a guessed one."""


def default_eps(model: nn.Module) -> float:
    """The model's own eps (its ``spec.default_eps``: dlib 0.01, SFace 0.0045); the paper's 0.001
    for a module without a spec; an error for a model file, whose spec has none until measured."""
    spec = getattr(model, "spec", None)
    eps = getattr(spec, "default_eps", PAPER_EPS)
    if eps is None:
        raise UncalibratedEpsError(
            f"model {spec.name} has no calibrated FaceQAN eps, and at the paper's 0.001 the attack can be too weak to rank "
            f"faces (docs/algorithm.md, 'eps per model'): run `faceqan calibrate FACES --model {spec.name}` and pass the eps "
            "it prints as --eps (--eps 0.001 for the paper's)"
        )
    return float(eps)


# Inputs may exceed [-1, 1] by float rounding (chips_to_tensor is exact; resizing is not).
RANGE_TOLERANCE = 1e-3


def check_images(images: torch.Tensor) -> None:
    """Refuse what is not a batch of RGB images in [-1, 1] (e.g. 0..255 pixels), with a message that says what."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images of shape (N, 3, H, W), got {tuple(images.shape)}")
    if not torch.isfinite(images).all():
        raise ValueError("images contain NaN or infinite values")
    if images.numel() == 0:
        return
    low, high = float(images.min()), float(images.max())
    if low < -1 - RANGE_TOLERANCE or high > 1 + RANGE_TOLERANCE:
        raise ValueError(
            f"images must have pixels in [-1, 1] (pixel / 127.5 - 1), got values in [{low:.4g}, {high:.4g}]"
            + ("; 0..255 images need x / 127.5 - 1" if high > 2 else "")
        )


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.cosine_similarity(a, b, dim=1)


class FaceQAN:
    """Scores batches of aligned faces with FaceQAN against one differentiable FR model.

    ``eps=None`` takes the model's own eps (``default_eps``), as the CLI and the service do.
    The model is put in eval mode, its parameters' gradients are turned off (only the input
    gets gradients) and, with ``channels_last``, its weights are stored NHWC: in place.

    >>> scorer = FaceQAN(model)            # model: (N, 3, H, W) in [-1, 1] -> (N, D)
    >>> parts = scorer(images)             # images: (N, 3, H, W) in [-1, 1]
    >>> parts.quality                      # higher = better for this model
    """

    def __init__(
        self,
        model: nn.Module,
        eps: float | None = None,
        steps: int = 5,
        copies: int = 10,
        power: float = 5,
        variant: Variant = "paper",
        seed: int = 0,
        channels_last: bool = True,
    ) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if eps is None:
            eps = default_eps(model)
        if not eps > 0:
            raise ValueError(f"eps must be positive, got {eps}")
        if steps < 1 or copies < 1:
            raise ValueError(f"steps and copies must be at least 1, got {steps} and {copies}")
        if variant == "paper" and copies < 2:
            raise ValueError("copies must be at least 2: the score uses the spread of the k similarities")
        if variant == "official" and power != int(power):
            raise ValueError(
                f"the official variant needs an integer power p, got {power}: its base q_adv * s_f is not clipped, and a "
                "negative base (s_f < 0) has no real fractional power; use an integer p or variant='paper'"
            )
        self.model = model.eval().requires_grad_(False)
        # NHWC convolutions: 27% faster per image with dlib on this project's CPUs
        # (benchmarks/speed.py); scores unchanged beyond float noise.
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model.to(memory_format=self.memory_format)
        self.eps, self.steps, self.copies, self.power = eps, steps, copies, power
        self.variant, self.seed = variant, seed
        self._lanes = CpuLanes()
        self._noise: dict[tuple[tuple[int, ...], torch.device], torch.Tensor] = {}

    @property
    def device(self) -> torch.device:
        return model_device(self.model)

    def noise(self, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        """The k noise patterns (k, C, H, W) for images of ``shape`` (C, H, W), kept per shape and device."""
        key = (shape, device)
        if key not in self._noise:
            self._noise[key] = uniform_noise((self.copies, *shape), self.seed, device)
        return self._noise[key]

    def _loss_grad(self, adv: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gradient of sum(1 - cos(M(adv), target)) w.r.t. adv only, and the similarities."""
        adv = adv.detach().requires_grad_(True)
        sims = cosine(self.model(adv), target)
        (grad,) = torch.autograd.grad((1 - sims).sum(), adv)
        return grad, sims.detach()

    def __call__(self, images: torch.Tensor) -> QualityParts:
        """Score a batch of aligned faces (N, 3, H, W) with pixels in [-1, 1]."""
        return self._run(images, explain=False)[0]

    def explain(self, images: torch.Tensor) -> tuple[QualityParts, torch.Tensor]:
        """The scores and, from the same attack, each face's adversarial perturbation: the final
        adversarial example minus its noisy start, averaged over the k copies, (N, 3, H, W) in
        [-1, 1] pixel units on the CPU (the paper's Fig. 1). Costs no extra model pass."""
        parts, perturbation = self._run(images, explain=True)
        assert perturbation is not None
        return parts, perturbation

    def _run(self, images: torch.Tensor, explain: bool) -> tuple[QualityParts, torch.Tensor | None]:
        check_images(images)
        if self.device.type == "cpu" and images.shape[0] > 1:
            # One image per lane: every image gets the same noise, so the split changes nothing.
            results = self._lanes.map(lambda i: self._score(images[i : i + 1], explain), range(images.shape[0]))
            perturbations = [p for _, p in results]
            return QualityParts.concat([parts for parts, _ in results]), torch.cat(perturbations) if explain else None
        return self._score(images, explain)

    def _score(self, images: torch.Tensor, explain: bool = False) -> tuple[QualityParts, torch.Tensor | None]:
        x = images.to(self.device, torch.float32).contiguous(memory_format=self.memory_format)
        n, k = x.shape[0], self.copies
        with torch.no_grad():
            both = self.model(torch.cat([x, x.flip(-1)]))
        clean, flipped = both[:n], both[n:]
        flip_sim = cosine(clean, flipped)
        target = clean.repeat_interleave(k, dim=0)
        noise = self.noise(tuple(x.shape[1:]), x.device).repeat(n, 1, 1, 1)
        start = x.repeat_interleave(k, dim=0).contiguous(memory_format=self.memory_format)
        attack = self._attack_paper if self.variant == "paper" else self._attack_official
        sims, moved = attack(start, noise, target)
        parts = aggregate(sims.view(n, -1), flip_sim, self.power, clip_flip=self.variant == "paper")
        parts = QualityParts(*(getattr(parts, f.name).cpu() for f in fields(parts)))
        return parts, moved.view(n, k, *x.shape[1:]).mean(dim=1).cpu() if explain else None

    def _attack_paper(self, start: torch.Tensor, noise: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The k final similarities per image, and how far the attack moved each copy from its noisy start."""
        adv = noisy = (start + self.eps * noise).clamp(-1, 1)
        step = self.eps / self.steps
        for _ in range(self.steps):
            grad, _ = self._loss_grad(adv, target)
            adv = (adv + step * grad.sign()).clamp(-1, 1)
        with torch.no_grad():
            return cosine(self.model(adv), target), adv - noisy

    def _attack_official(self, start: torch.Tensor, noise: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # The official code works on [0, 1] images and normalises inside the model; its
        # clamp to [-1, 1] (in [0, 1] units) never binds on real images.
        adv01 = noisy01 = ((start + 1) / 2 + self.eps * noise).clamp(-1, 1)
        recorded = []
        for _ in range(self.steps):
            grad, sims = self._loss_grad(adv01 * 2 - 1, target)
            recorded.append(sims)
            # d/d(adv01) = 2 * d/d(adv): same sign.
            adv01 = (adv01 + self.eps * grad.sign()).clamp(-1, 1)
        n = target.shape[0] // self.copies
        return torch.stack(recorded, dim=1).view(n, self.copies * self.steps), (adv01 - noisy01) * 2
