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
    target = np.where(credited > 0, mean_rank, rank)
    moved = (1 - theta) * rank + theta * target
    refined = np.empty_like(labels)
    refined[np.argsort(moved, kind="stable")] = np.sort(labels)
    return refined
