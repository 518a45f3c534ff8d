"""``faceqan calibrate-froq``: choose a model's FROQ layers on pseudo-labels from the same model.

Pseudo-label of a face: the mean of two cosine similarities of its embedding, to its mirror
image's (s_f) and to a degraded copy's (Gaussian noise of sigma 0.1 in [-1, 1] units and a grey
block over a seeded tenth of the chip): cheap, and low where the model's grip on the face is weak.
Each stage map's log RMS activation is standardised over the calibration faces; stages are then
added greedily, each with the sign that helps, while the Spearman correlation of their mean with
the pseudo-labels rises by at least ``MIN_GAIN`` (at most ``max_layers``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr

from ..faces.prepare import FacePreparer
from ..models.spec import FaceModel
from ..pipeline import chips_to_tensor, prepared_batches
from ..student.features import stage_log_norms
from .layers import FroqLayers

MIN_GAIN = 0.002
NOISE_SIGMA = 0.1


def degraded(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Noisy copies of the batch with a grey block over a tenth of each chip."""
    n, _, size, _ = images.shape
    out = (images + NOISE_SIGMA * torch.randn(images.shape, generator=generator)).clamp(-1, 1)
    side = max(1, round(size * 0.1**0.5))
    corners = torch.randint(0, size - side + 1, (n, 2), generator=generator)
    for i, (y, x) in enumerate(corners.tolist()):
        out[i, :, y : y + side, x : x + side] = 0.0
    return out


def measure(paths: list[str], model: FaceModel, batch_size: int = 16, seed: int = 0, progress: bool = False) -> tuple[np.ndarray, np.ndarray, int]:
    """(faces, stages) log RMS of each stage, each face's pseudo-label, and the faces that failed."""
    preparer = FacePreparer(model.spec)
    generator = torch.Generator().manual_seed(seed)
    norms, labels, failed, done = [], [], 0, 0
    for faces in prepared_batches(paths, preparer, batch_size):
        chips = [face.chip for face in faces if face.chip is not None]
        failed += len(faces) - len(chips)
        done += len(faces)
        if not chips:
            continue
        images = chips_to_tensor(chips).to(next(model.parameters()).device)
        stage_norms, embedding = stage_log_norms(model, images)
        with torch.no_grad():
            mirror, noisy = model(images.flip(-1)), model(degraded(images.cpu(), generator).to(images.device))
        labels.append((0.5 * (F.cosine_similarity(embedding, mirror) + F.cosine_similarity(embedding, noisy))).cpu().numpy())
        norms.append(stage_norms.cpu().numpy())
        if progress:
            print(f"\rcalibrate-froq: {done}/{len(paths)} images", end="", flush=True)
    if progress:
        print()
    if not norms:
        raise ValueError("calibrate-froq: no face could be prepared from the images given")
    return np.concatenate(norms).astype(np.float64), np.concatenate(labels).astype(np.float64), failed


def choose(norms: np.ndarray, labels: np.ndarray, max_layers: int = 4) -> tuple[list[int], list[int], list[float]]:
    """Greedy forward selection: stages, signs, and the Spearman correlation after each step."""
    z = (norms - norms.mean(0)) / (norms.std(0) + 1e-12)
    chosen: list[int] = []
    signs: list[int] = []
    trace: list[float] = []
    total = np.zeros(len(labels))
    best_so_far = -1.0
    while len(chosen) < max_layers:
        candidates = [(float(spearmanr(total + sign * z[:, s], labels).statistic), s, sign) for s in range(z.shape[1]) if s not in chosen for sign in (1, -1)]
        rho, stage, sign = max(candidates)
        if rho < best_so_far + MIN_GAIN:
            break
        chosen.append(stage)
        signs.append(sign)
        trace.append(round(rho, 4))
        total += sign * z[:, stage]
        best_so_far = rho
    return chosen, signs, trace


def calibrate_froq(paths: list[str], model: FaceModel, model_name: str, max_layers: int = 4, batch_size: int = 16, seed: int = 0, progress: bool = False) -> FroqLayers:
    norms, labels, failed = measure(paths, model, batch_size, seed, progress)
    chosen, signs, trace = choose(norms, labels, max_layers)
    single = [round(float(spearmanr(norms[:, s], labels).statistic), 4) for s in range(norms.shape[1])]
    report = {
        "faces": int(len(labels)), "failed": failed, "seed": seed, "spearman_after_each_layer": trace, "spearman_of_each_stage": single,
        "pseudo_label": "mean cosine of the embedding to its mirror's and to a noisy (sigma 0.1), partly occluded copy's",
    }  # fmt: skip
    mean, std = norms.mean(0), norms.std(0) + 1e-12
    return FroqLayers(model_name, model.fingerprint(), norms.shape[1], chosen, signs, [float(mean[s]) for s in chosen], [float(std[s]) for s in chosen], report)
