"""ERC and EDC: what rejecting low-quality samples does to recognition errors.

Both rank the mated pairs by pair quality (min of the two images' qualities by default)
and discard the lowest ones. The discard fraction x is a fraction of the mated pairs; a
non-mated pair is discarded when its pair quality is at or below the quality cut that
discards x of the mated pairs.

- ERC (the FaceQAN paper, CR-FIQA, MagFace): at each x the score threshold is re-derived
  at the target FMR on the non-mated pairs that remain; FNMR of the remaining mated pairs.
  AUC over [0, r_max] (trapezoid); the paper's Table II reports it x 1e3.
- EDC (ISO/IEC 29794-1:2024, Schlett et al. T-BIOM 2023): the threshold is fixed once,
  before discarding (from a starting FNMR or a target FMR on all pairs); pairs with equal
  quality are discarded together, so the curve is a step function of the discarded
  fraction; pAUC up to a discard limit, optionally minus the area under the theoretical
  best curve (e0 - x) / (1 - x) (every discarded pair a false non-match).
Scores are similarities: a pair is accepted when its score is >= the threshold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


def pair_quality(q1: np.ndarray, q2: np.ndarray, how: str = "min") -> np.ndarray:
    """Combine the qualities of a pair's two images: min (default), mean, or product."""
    combine = {"min": np.minimum, "mean": lambda a, b: (a + b) / 2, "product": np.multiply}
    if how not in combine:
        raise ValueError(f"pair quality must be one of {sorted(combine)}, got {how!r}")
    return combine[how](np.asarray(q1, float), np.asarray(q2, float))


def threshold_at_fmr(nonmated_scores: np.ndarray, fmr: float) -> float:
    """The lowest threshold whose FMR (share of non-mated scores >= it) is at most ``fmr``."""
    scores = np.asarray(nonmated_scores, float)
    if scores.size == 0:
        raise ValueError("no non-mated scores left to set a threshold on")
    allowed = int(np.floor(fmr * scores.size + 1e-9))  # number of false matches allowed
    if allowed >= scores.size:
        return float(scores.min())
    # Accept strictly above the (allowed + 1)-th highest score (a partial sort is enough).
    position = scores.size - 1 - allowed
    return float(np.nextafter(np.partition(scores, position)[position], np.inf))


def fnmr(mated_scores: np.ndarray, threshold: float) -> float:
    mated_scores = np.asarray(mated_scores, float)
    return float(np.mean(mated_scores < threshold)) if mated_scores.size else float("nan")


@dataclass(frozen=True)
class Curve:
    """Discard fractions (x) and FNMR values (y) of an ERC or EDC."""

    x: np.ndarray
    y: np.ndarray


def _quality_cuts(mated_quality: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """The quality at or below which ``fraction`` of the mated pairs lie (lowest first)."""
    ordered = np.sort(mated_quality)
    counts = np.floor(fractions * ordered.size + 1e-9).astype(int)
    return np.array([-np.inf if c == 0 else ordered[c - 1] for c in counts])


def erc(
    mated_scores: np.ndarray,
    mated_quality: np.ndarray,
    nonmated_scores: np.ndarray,
    nonmated_quality: np.ndarray,
    fmr: float = 1e-3,
    fractions: np.ndarray | None = None,
) -> Curve:
    """FNMR at a threshold re-derived at ``fmr`` on what remains, for each discard fraction."""
    fractions = np.linspace(0, 0.95, 191) if fractions is None else np.asarray(fractions, float)
    ms, mq = np.asarray(mated_scores, float), np.asarray(mated_quality, float)
    ns, nq = np.asarray(nonmated_scores, float), np.asarray(nonmated_quality, float)
    mated_order = np.argsort(mq, kind="stable")
    values = []
    for fraction, cut in zip(fractions, _quality_cuts(mq, fractions)):
        kept_mated = ms[mated_order[int(np.floor(fraction * ms.size + 1e-9)) :]]
        kept_nonmated = ns[nq > cut]
        values.append(fnmr(kept_mated, threshold_at_fmr(kept_nonmated, fmr)) if kept_nonmated.size else np.nan)
    return Curve(fractions, np.array(values))


def area(curve: Curve, limit: float) -> float:
    """Trapezoid area under an ERC from 0 to ``limit`` (interpolated at the limit)."""
    x, y = curve.x, curve.y
    keep = x <= limit
    xs, ys = x[keep], y[keep]
    if xs[-1] < limit:
        xs, ys = np.append(xs, limit), np.append(ys, np.interp(limit, x, y))
    return float(np.trapezoid(ys, xs))


def edc(mated_scores: np.ndarray, mated_quality: np.ndarray, threshold: float) -> Curve:
    """Step EDC at a fixed threshold: FNMR after discarding the lowest-quality mated pairs,
    ties discarded together. Point i holds from x[i] to x[i + 1]."""
    ms, mq = np.asarray(mated_scores, float), np.asarray(mated_quality, float)
    order = np.argsort(mq, kind="stable")
    ms, mq = ms[order], mq[order]
    errors = (ms < threshold).astype(float)
    # Positions where a new quality value starts: discard everything before them.
    starts = np.concatenate([[0], np.flatnonzero(np.diff(mq) != 0) + 1])
    remaining_errors = np.cumsum(errors[::-1])[::-1]
    x = starts / ms.size
    y = remaining_errors[starts] / (ms.size - starts)
    return Curve(x, y)


def edc_threshold(mated_scores: np.ndarray, nonmated_scores: np.ndarray | None = None, start_fnmr: float | None = 0.05, fmr: float | None = None) -> float:
    """EDC's fixed threshold: at a target FMR on all non-mated pairs, or at a starting FNMR."""
    if fmr is not None:
        if nonmated_scores is None:
            raise ValueError("a target FMR needs the non-mated scores")
        return threshold_at_fmr(nonmated_scores, fmr)
    if start_fnmr is None:
        raise ValueError("give a starting FNMR or a target FMR")
    return float(np.quantile(np.asarray(mated_scores, float), start_fnmr))


def pauc(curve: Curve, limit: float = 0.2, minus_best: bool = False) -> float:
    """Area under a step EDC from 0 to ``limit``; optionally minus the theoretical best."""
    edges = np.append(curve.x, 1.0)
    widths = np.clip(np.minimum(edges[1:], limit) - edges[:-1], 0, None)
    total = float(np.sum(widths * curve.y))
    if minus_best:
        total -= best_area(float(curve.y[0]), limit)
    return total


def best_area(start_error: float, limit: float) -> float:
    """Area under (e0 - x) / (1 - x), clipped at 0, from 0 to ``limit``."""
    x = np.linspace(0, limit, 2001)
    return float(np.trapezoid(np.clip((start_error - x) / (1 - x), 0, None), x))


def bootstrap(
    statistic: Callable[[np.ndarray], float], groups: np.ndarray, resamples: int = 200, seed: int = 0
) -> np.ndarray:
    """``statistic(pair_indices)`` over resamples of the groups (identities) with replacement:
    every pair of a drawn group is taken, as many times as the group is drawn."""
    groups = np.asarray(groups)
    unique, inverse = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(unique.size)]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        drawn = rng.integers(0, unique.size, unique.size)
        values.append(statistic(np.concatenate([members[g] for g in drawn])))
    return np.array(values)
