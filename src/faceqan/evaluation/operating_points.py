"""Operating points of a quality gate: reject every image whose quality is below a threshold,
then compare what remains at a fixed score threshold. For each reject rate: the quality
threshold that rejects that share of images, and the FNMR / FMR of the pairs left.

This answers the gatekeeper's question (which quality threshold, and what does it buy?),
where ERC / EDC answer the researcher's (which method ranks samples best?).
"""

from __future__ import annotations

import numpy as np

from .protocols import Protocol

REJECT_RATES = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3)


def quality_threshold(image_quality: np.ndarray, reject_rate: float) -> float:
    """The lowest quality kept when rejecting ``reject_rate`` of the images with a quality
    (images below it are rejected; ties at it are kept, so slightly fewer may go)."""
    return _threshold_in(_sorted_qualities(image_quality), reject_rate)


def _sorted_qualities(image_quality: np.ndarray) -> np.ndarray:
    finite = np.sort(image_quality[np.isfinite(image_quality)])
    if finite.size == 0:
        raise ValueError("no image has a quality")
    return finite


def _threshold_in(ordered: np.ndarray, reject_rate: float) -> float:
    return float(ordered[min(int(np.floor(reject_rate * ordered.size + 1e-9)), ordered.size - 1)])


def operating_points(
    protocol: Protocol, scores: np.ndarray, image_quality: np.ndarray, score_threshold: float, rates: tuple[float, ...] = REJECT_RATES
) -> list[dict[str, float]]:
    """One row per reject rate (0 first: no gate). Images without a quality (NaN: no face,
    an error) are always rejected. A pair remains when both its images pass; FNMR and FMR at
    ``score_threshold`` (a pair matches when its score is >= it) over the pairs that remain."""
    ordered = _sorted_qualities(image_quality)
    # Images without a quality count as -inf: below every threshold.
    per_image = np.where(np.isfinite(image_quality), image_quality, -np.inf)
    lowest = np.minimum(per_image[protocol.first], per_image[protocol.second])  # a pair passes when this does
    rows = []
    for rate in (0.0, *rates):
        threshold = _threshold_in(ordered, rate)  # rate 0: the lowest quality, so only images without one go
        kept = per_image >= threshold
        pair_kept = lowest >= threshold
        mated, nonmated = pair_kept & protocol.mated, pair_kept & ~protocol.mated
        rows.append({
            "reject_rate": rate,
            "quality_threshold": threshold if rate else -np.inf,  # -inf: no gate
            "images_rejected": float(1 - kept.mean()),
            "mated_pairs_kept": float(mated.sum() / max(protocol.mated.sum(), 1)),
            "nonmated_pairs_kept": float(nonmated.sum() / max((~protocol.mated).sum(), 1)),
            "fnmr": float(np.mean(scores[mated] < score_threshold)) if mated.any() else float("nan"),
            "fmr": float(np.mean(scores[nonmated] >= score_threshold)) if nonmated.any() else float("nan"),
        })  # fmt: skip
    return rows


def random_operating_points(
    protocol: Protocol, scores: np.ndarray, score_threshold: float, seeds: int = 10, rates: tuple[float, ...] = REJECT_RATES
) -> list[dict[str, float]]:
    """``operating_points`` of a random quality, averaged over seeds: what a gate that knows
    nothing buys (FNMR stays where it was, in expectation)."""
    runs = [
        operating_points(protocol, scores, np.random.default_rng(seed).uniform(size=len(protocol.images)), score_threshold, rates)
        for seed in range(seeds)
    ]
    return [{key: float(np.mean([run[i][key] for run in runs])) for key in runs[0][i]} for i in range(len(runs[0]))]


def _figure(value: float, digits: int) -> str:
    return "n/a" if np.isnan(value) else f"{value:.{digits}f}"  # n/a: no pair of that kind left


def operating_points_table(points: dict[str, list[dict[str, float]]], reference: str) -> str:
    """Markdown: per reject rate, the ``reference`` method's quality threshold, and every
    method's FNMR (then FMR) at the fixed score threshold."""
    names = list(points)
    lines = [
        "| images rejected | " + f"{reference} threshold | " + " | ".join(f"FNMR {n}" for n in names) + f" | FMR {reference} |",
        "|---|---|" + "---|" * len(names) + "---|",
    ]
    for i, row in enumerate(points[reference]):
        rate = "none" if row["reject_rate"] == 0 else f"{row['reject_rate']:.0%}"
        threshold = "-" if not np.isfinite(row["quality_threshold"]) else f"{row['quality_threshold']:.4f}"
        fnmrs = " | ".join(_figure(points[n][i]["fnmr"], 4) for n in names)
        lines.append(f"| {rate} | {threshold} | {fnmrs} | {_figure(row['fmr'], 5)} |")
    return "\n".join(lines) + "\n"
