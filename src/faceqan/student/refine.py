"""Identity-based refinement of teacher labels before a student learns them (Babnik, Damer,
Štruc, IWBF 2023): a face that mates badly with the other faces of its person is worth less
than its label says.

Every mated pair of a person is credited to its lower-labelled member; each face's rank moves a
step ``theta`` toward the mean rank (among all mated pairs) of the similarities credited to it,
and the labels' own values are re-assigned in the new order, so the distribution stays the
teacher's. Faces credited with no pair keep their rank.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def refine_labels(labels: np.ndarray, embeddings: np.ndarray, groups: np.ndarray, theta: float) -> np.ndarray:
    """Labels re-ordered by ``theta`` in [0, 1] (0: unchanged) toward their faces' mated similarity ranks."""
    if not 0 <= theta <= 1:
        raise ValueError(f"the refinement step must lie in [0, 1], got {theta}")
    labels = np.asarray(labels, np.float64)
    if theta == 0:
        return labels.copy()
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    lower, similarity = [], []
    for group in np.unique(groups):
        members = np.flatnonzero(groups == group)
        if members.size < 2:
            continue
        first, second = np.triu_indices(members.size, k=1)
        a, b = members[first], members[second]
        lower.append(np.where(labels[a] <= labels[b], a, b))
        similarity.append(np.einsum("ij,ij->i", unit[a], unit[b]))
    rank = (rankdata(labels) - 0.5) / labels.size
    if not lower:
        return labels.copy()
    lower, similarity = np.concatenate(lower), np.concatenate(similarity)
    pair_rank = (rankdata(similarity) - 0.5) / similarity.size
    credited = np.bincount(lower, minlength=labels.size)
    mean_rank = np.bincount(lower, weights=pair_rank, minlength=labels.size) / np.maximum(credited, 1)
    return _moved(labels, rank, np.where(credited > 0, mean_rank, rank), theta)


def refine_labels_by_centre(labels: np.ndarray, embeddings: np.ndarray, groups: np.ndarray, theta: float) -> np.ndarray:
    """The eDifFIQA variant: each face's rank moves a step ``theta`` toward the rank of its cosine
    similarity to the mean embedding of its person's better-labelled half (faces of people with
    one face keep their rank); the teacher's values are re-assigned in the new order."""
    if not 0 <= theta <= 1:
        raise ValueError(f"the refinement step must lie in [0, 1], got {theta}")
    labels = np.asarray(labels, np.float64)
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    similarity = np.full(labels.size, np.nan)
    for group in np.unique(groups):
        members = np.flatnonzero(groups == group)
        if members.size < 2:
            continue
        better = members[labels[members] >= np.median(labels[members])]
        centre = unit[better].mean(0)
        similarity[members] = unit[members] @ (centre / np.linalg.norm(centre))
    rank = (rankdata(labels) - 0.5) / labels.size
    known = ~np.isnan(similarity)
    if theta == 0 or not known.any():
        return labels.copy()
    target = rank.copy()
    target[known] = (rankdata(similarity[known]) - 0.5) / known.sum()
    return _moved(labels, rank, target, theta)


def _moved(labels: np.ndarray, rank: np.ndarray, target: np.ndarray, theta: float) -> np.ndarray:
    """The labels' values re-assigned in the order of ranks moved a step ``theta`` toward ``target``."""
    moved = (1 - theta) * rank + theta * target
    refined = np.empty_like(labels)
    refined[np.argsort(moved, kind="stable")] = np.sort(labels)
    return refined
