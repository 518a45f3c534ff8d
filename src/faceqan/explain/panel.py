"""One PNG panel per face: the scored chip, its mirror image, the adversarial perturbation
(signed, as in the paper's Fig. 1) and its magnitude over the chip, with the score's parts."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..extras import require


def render_panel(chip: np.ndarray, perturbation: np.ndarray, parts: dict[str, float], title: str, path: str | Path | BinaryIO) -> str | Path | BinaryIO:
    """Write the panel of one face. ``chip``: (S, S, 3) uint8 RGB; ``perturbation``: (3, S, S)
    in [-1, 1] pixel units (``FaceQAN.explain``); ``parts``: quality, q_adv, flip_sim, mean_sim, std_sim."""
    require("matplotlib", "plots", "faceqan explain's panels")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    signed = perturbation.mean(axis=0)  # over the colour channels
    limit = float(np.abs(signed).max()) or 1.0
    magnitude = np.abs(perturbation).mean(axis=0)
    figure, axes = plt.subplots(1, 4, figsize=(10, 3.1))
    axes[0].imshow(chip)
    axes[0].set_title("scored chip", fontsize=9)
    axes[1].imshow(chip[:, ::-1])
    axes[1].set_title(f"mirror (s_f {parts['flip_sim']:.4f})", fontsize=9)
    axes[2].imshow(signed, cmap="RdBu_r", vmin=-limit, vmax=limit)
    axes[2].set_title(f"adversarial noise (+-{limit * 127.5:.2f} grey levels)", fontsize=9)
    axes[3].imshow(chip.mean(axis=2), cmap="gray")
    axes[3].imshow(magnitude, cmap="inferno", alpha=0.6)
    axes[3].set_title("noise magnitude over the face", fontsize=9)
    for axis in axes:
        axis.axis("off")
    figure.suptitle(
        f"{title}\nQ {parts['quality']:.4f}   q_adv {parts['q_adv']:.4f}   s_f {parts['flip_sim']:.4f}   "
        f"mean sim {parts['mean_sim']:.5f}   std sim {parts['std_sim']:.5f}",
        fontsize=9,
    )
    figure.tight_layout()
    if isinstance(path, (str, Path)):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100, format="png")
    plt.close(figure)
    return path
