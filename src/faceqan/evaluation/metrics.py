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


def threshold_at_fmr(nonmated_scores: np.ndarray, fmr: float, weights: np.ndarray | None = None) -> float:
    """The lowest threshold whose FMR (share of non-mated scores >= it) is at most ``fmr``;
    ``weights``: how many times each score counts."""
    scores = np.asarray(nonmated_scores, float)
    if scores.size == 0:
        raise ValueError("no non-mated scores left to set a threshold on")
    if weights is None:
        allowed = int(np.floor(fmr * scores.size + 1e-9))  # number of false matches allowed
        if allowed >= scores.size:
            return float(scores.min())
        # Accept strictly above the (allowed + 1)-th highest score (a partial sort is enough).
        position = scores.size - 1 - allowed
        return float(np.nextafter(np.partition(scores, position)[position], np.inf))
    order = np.argsort(-scores, kind="stable")
    weights = np.asarray(weights, float)[order]
    return _threshold_descending(scores[order], weights, float(weights.sum()), fmr)


def _threshold_descending(
    scores: np.ndarray, weights: np.ndarray, total: float, fmr: float, quality: np.ndarray | None = None, cut: float = -np.inf
) -> float:
    """``threshold_at_fmr`` for scores in descending order, each counted ``weights`` times,
    of the pairs with quality > cut (all when ``quality`` is None; ``total``: their weight).
    Reads only the top of the list, so a threshold among millions of scores is cheap."""
    if total <= 0:
        raise ValueError("no non-mated scores left to set a threshold on")
    allowed = int(np.floor(fmr * total + 1e-9))
    if allowed >= total:
        counted = weights > 0 if quality is None else (weights > 0) & (quality > cut)
        return float(scores[counted].min())
    start, size, seen = 0, 4096, 0.0
    while start < scores.size:
        end = start + size
        chunk = weights[start:end] if quality is None else np.where(quality[start:end] > cut, weights[start:end], 0)
        counted = np.cumsum(chunk) + seen
        hit = int(np.searchsorted(counted, allowed + 1))  # the (allowed + 1)-th highest counted score
        if hit < counted.size:
            return float(np.nextafter(scores[start + hit], np.inf))
        seen, start, size = float(counted[-1]), end, size * 2
    raise ValueError("fewer non-mated pairs than their weights say")


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


class NonmatedPairs:
    """Non-mated comparison scores with their pair qualities, prepared once (highest score
    first, qualities ranked) so that ERCs under many bootstrap weightings read only what
    they need: the top of the score list and a count per quality level."""

    def __init__(self, scores: np.ndarray, quality: np.ndarray, descending: bool = False, cut_levels: np.ndarray | None = None):
        """``descending``: the scores are already in descending order (sorted once for many methods).
        ``cut_levels``: every quality cut ``kept_weight`` will be asked about (ERC cuts are mated
        pair qualities, or -inf); ranking millions of pairs against those few thousand levels
        is far cheaper than against their own. None: any cut (each pair's quality is a level)."""
        scores, quality = np.asarray(scores, float), np.asarray(quality, float)
        # ``order`` reorders per-pair arrays (weights) like the scores; None: already in order.
        self.order = None if descending else np.argsort(-scores, kind="stable")
        self.scores, self.quality = (scores, quality) if descending else (scores[self.order], quality[self.order])
        self.any_cut = cut_levels is None
        self.levels = np.unique(np.append(self.quality if self.any_cut else cut_levels, -np.inf))
        # A pair's rank r: its quality lies in (levels[r - 1], levels[r]].
        self.rank = np.searchsorted(self.levels, self.quality, side="left")

    def kept_weight(self, weights: np.ndarray, cuts: np.ndarray) -> np.ndarray:
        """For each cut, the total weight of the pairs with quality > cut (weights in score order)."""
        cuts = np.asarray(cuts, float)
        if not self.any_cut and not np.isin(cuts, self.levels).all():
            raise ValueError("a quality cut that is not one of the levels given at construction")
        at_or_below = np.concatenate([[0.0], np.cumsum(np.bincount(self.rank, weights=weights, minlength=self.levels.size + 1))])
        return at_or_below[-1] - at_or_below[np.searchsorted(self.levels, cuts, side="right")]

    def threshold(self, weights: np.ndarray, kept: float, fmr: float, cut: float | None = None) -> float:
        """The threshold at ``fmr`` among the pairs with quality > cut (all pairs: cut None)."""
        return _threshold_descending(self.scores, weights, kept, fmr, None if cut is None else self.quality, -np.inf if cut is None else cut)


def erc(
    mated_scores: np.ndarray,
    mated_quality: np.ndarray,
    nonmated_scores: np.ndarray | NonmatedPairs,
    nonmated_quality: np.ndarray | None = None,
    fmr: float = 1e-3,
    fractions: np.ndarray | None = None,
    nonmated_weights: np.ndarray | None = None,
) -> Curve:
    """FNMR at a threshold re-derived at ``fmr`` on what remains, for each discard fraction.

    The non-mated pairs come as scores and qualities, or prepared once as ``NonmatedPairs``
    (then ``nonmated_quality`` is None) when many ERCs are drawn from millions of pairs;
    ``nonmated_weights``: how many times each non-mated pair counts (a bootstrap resample's
    draws), in the order of the scores given (for ``NonmatedPairs``: in its score order)."""
    fractions = np.linspace(0, 0.95, 191) if fractions is None else np.asarray(fractions, float)
    if np.any(np.diff(fractions) < 0):
        raise ValueError("discard fractions must be in ascending order")
    ms, mq = np.asarray(mated_scores, float), np.asarray(mated_quality, float)
    nw = None if nonmated_weights is None else np.asarray(nonmated_weights, float)
    if isinstance(nonmated_scores, NonmatedPairs):
        nonmated = nonmated_scores
    else:
        nonmated = NonmatedPairs(nonmated_scores, nonmated_quality)
        nw = None if nw is None or nonmated.order is None else nw[nonmated.order]
    nw = np.ones(nonmated.scores.size) if nw is None else nw
    mated_order = np.argsort(mq, kind="stable")
    cuts = _quality_cuts(mq, fractions)
    values = []
    for fraction, cut, kept in zip(fractions, cuts, nonmated.kept_weight(nw, cuts)):
        kept_mated = ms[mated_order[int(np.floor(fraction * ms.size + 1e-9)) :]]
        values.append(fnmr(kept_mated, nonmated.threshold(nw, kept, fmr, cut)) if kept > 0 else np.nan)
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
    """``statistic(weights)`` over resamples of the groups (identities) with replacement:
    ``weights[i]`` is how many times pair i's group was drawn (every pair of a drawn group
    counts once per draw)."""
    groups = np.asarray(groups)
    if np.issubdtype(groups.dtype, np.integer) and groups.size and groups.min() >= 0:
        # Integer labels: renumber without sorting (millions of pairs).
        present = np.bincount(groups) > 0
        count, inverse = int(present.sum()), (np.cumsum(present) - 1)[groups]
    else:
        unique, inverse = np.unique(groups, return_inverse=True)
        count = unique.size
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        draws = np.bincount(rng.integers(0, count, count), minlength=count)
        values.append(statistic(draws[inverse]))
    return np.array(values)
