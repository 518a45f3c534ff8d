"""Verification accuracy over folds, threshold chosen on the other folds (LFW View 2 style)."""

from __future__ import annotations

import numpy as np


def best_threshold(scores: np.ndarray, mated: np.ndarray) -> float:
    """The similarity threshold (accept if score >= t) with the highest accuracy on these pairs."""
    candidates = np.unique(scores)
    # Midpoints between consecutive distinct scores, plus both ends.
    cuts = np.concatenate([[candidates[0] - 1e-6], (candidates[1:] + candidates[:-1]) / 2, [candidates[-1] + 1e-6]])
    order = np.argsort(scores)
    sorted_scores, sorted_mated = scores[order], mated[order]
    below = np.searchsorted(sorted_scores, cuts, side="left")
    mated_below = np.concatenate([[0], np.cumsum(sorted_mated)])[below]
    nonmated_below = below - mated_below
    correct = nonmated_below + (mated.sum() - mated_below)
    return float(cuts[int(np.argmax(correct))])


def fold_accuracy(scores: np.ndarray, mated: np.ndarray, folds: np.ndarray) -> tuple[float, float]:
    """Mean and std of per-fold accuracy, each fold's threshold tuned on the other folds."""
    accuracies = []
    for fold in np.unique(folds):
        test = folds == fold
        threshold = best_threshold(scores[~test], mated[~test])
        accuracies.append(np.mean((scores[test] >= threshold) == mated[test]))
    return float(np.mean(accuracies)), float(np.std(accuracies))


def fixed_threshold_accuracy(scores: np.ndarray, mated: np.ndarray, threshold: float) -> float:
    return float(np.mean((scores >= threshold) == mated))
