"""Is the adversarial noise of high-quality faces more face-like than that of low-quality ones
(the paper's Fig. 1)? Measured, not assumed.

    python benchmarks/noise_structure.py SCORES.csv [--count 100] [--figure runs/noise_structure.png]

From a FaceQAN score file (its settings file beside it gives the model and settings), the
``--count`` highest- and lowest-quality faces are scored again with ``FaceQAN.explain``; each
noise map (mean over the k copies and the colour channels) gets two structure measures:
- edge correlation: Pearson correlation of the noise magnitude with the chip's edge map
  (Sobel gradient magnitude of the grey chip): high when the noise follows the face's edges;
- autocorrelation: correlation of the signed noise with itself shifted by one pixel (mean of
  the horizontal and vertical lags): high for smooth, structured noise, ~0 for white noise.
Prints each group's mean with a 95% bootstrap interval and the paired-free difference
(high - low) with its interval, and draws example maps of both groups.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from faceqan.explain.run import scorer_from_settings
from faceqan.pipeline import chips_to_tensor
from faceqan.sinks import read_rows


def edge_correlation(chip: np.ndarray, noise: np.ndarray) -> float:
    grey = cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY).astype(np.float32)
    edges = np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))
    return float(np.corrcoef(edges.ravel(), np.abs(noise).ravel())[0, 1])


def autocorrelation(noise: np.ndarray) -> float:
    def lag(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])

    return (lag(noise[:, 1:], noise[:, :-1]) + lag(noise[1:], noise[:-1])) / 2


def bootstrap_mean(values: np.ndarray, resamples: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    rng = np.random.default_rng(seed)
    means = rng.choice(values, (resamples, values.size)).mean(axis=1)
    return float(values.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def bootstrap_difference(high: np.ndarray, low: np.ndarray, resamples: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    rng = np.random.default_rng(seed)
    differences = rng.choice(high, (resamples, high.size)).mean(1) - rng.choice(low, (resamples, low.size)).mean(1)
    return float(high.mean() - low.mean()), float(np.percentile(differences, 2.5)), float(np.percentile(differences, 97.5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scores")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--figure", default="runs/noise_structure.png")
    args = parser.parse_args()
    settings = json.loads(Path(args.scores + ".settings.json").read_text())
    rows = sorted((r for r in read_rows(args.scores) if r.get("status") == "ok" and str(r.get("face")) == "0"), key=lambda r: -float(r["quality"]))
    count = min(args.count, len(rows) // 2)
    groups = {"highest": rows[:count], "lowest": rows[-count:]}
    scorer, preparer = scorer_from_settings(settings)
    measures: dict[str, dict[str, list[float]]] = {}
    examples: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for name, group in groups.items():
        measures[name] = {"edge correlation": [], "autocorrelation": []}
        examples[name] = []
        for row in group:
            chip = preparer(row["path"])[0].chip
            if chip is None:
                continue
            noise = scorer.explain(chips_to_tensor([chip]))[1][0].mean(dim=0).numpy()
            measures[name]["edge correlation"].append(edge_correlation(chip, noise))
            measures[name]["autocorrelation"].append(autocorrelation(noise))
            if len(examples[name]) < 4:
                examples[name].append((chip, noise))
    print(f"{args.scores}: model {settings['model']}, eps {scorer.eps:g}, l {scorer.steps}, k {scorer.copies}; {count} highest- and {count} lowest-quality faces")
    for measure in ("edge correlation", "autocorrelation"):
        high, low = (np.array(measures[g][measure]) for g in ("highest", "lowest"))
        for name, values in (("highest", high), ("lowest", low)):
            mean, lower, upper = bootstrap_mean(values)
            print(f"  {measure}, {name} quality: {mean:.4f} [{lower:.4f}, {upper:.4f}]")
        difference, lower, upper = bootstrap_difference(high, low)
        print(f"  {measure}, highest - lowest: {difference:+.4f} [{lower:+.4f}, {upper:+.4f}]")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(4, 4, figsize=(8, 8.4))
    for column, (name, pairs) in enumerate((g, examples[g]) for g in ("highest", "lowest")):
        for row, (chip, noise) in enumerate(pairs):
            limit = float(np.abs(noise).max()) or 1.0
            axes[row, 2 * column].imshow(chip)
            axes[row, 2 * column + 1].imshow(noise, cmap="RdBu_r", vmin=-limit, vmax=limit)
        axes[0, 2 * column].set_title(f"{name} quality", fontsize=9)
        axes[0, 2 * column + 1].set_title("adversarial noise", fontsize=9)
    for axis in axes.ravel():
        axis.axis("off")
    figure.tight_layout()
    Path(args.figure).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.figure, dpi=80)
    print(f"examples -> {args.figure}")


if __name__ == "__main__":
    main()
