"""The student's head: predicts FaceQAN's adversarial term q_adv from pooled features.

Labels are rank-transformed (each q_adv's rank among the training labels, mapped to a
standard normal score), so the fit preserves the teacher's order and no outlier dominates;
a prediction is mapped back through the training labels' quantiles, so the student's q_adv
lives on the teacher's scale. The fit is ridge regression on standardised features, its
penalty chosen by cross-validation over identity groups (no person in two folds), by the
Spearman correlation with the teacher on the held-out folds. Deterministic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.special import ndtr, ndtri
from scipy.stats import rankdata, spearmanr
from torch import nn

PENALTIES = (1.0, 10.0, 100.0, 1e3, 1e4, 1e5)
QUANTILE_POINTS = 1001


def normal_scores(values: np.ndarray) -> np.ndarray:
    """Ranks of ``values`` as standard normal scores (ties share their mean rank)."""
    return ndtri((rankdata(values) - 0.5) / values.size)


@dataclass
class RidgeHead:
    """Standardise, then a linear map; ``quantiles``: the training q_adv at evenly spaced probabilities."""

    mean: np.ndarray
    scale: np.ndarray
    weight: np.ndarray
    bias: float
    quantiles: np.ndarray
    penalty: float
    report: dict = field(default_factory=dict)

    def score(self, features: np.ndarray) -> np.ndarray:
        """The normal-score prediction (the head's raw output, in rank order)."""
        return ((features - self.mean) / self.scale) @ self.weight + self.bias

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Predicted q_adv on the teacher's scale."""
        probability = ndtr(self.score(features))
        return np.interp(probability, np.linspace(0, 1, self.quantiles.size), self.quantiles)


def _solve(gram: np.ndarray, moment: np.ndarray, penalty: float) -> np.ndarray:
    """Ridge weights (X'X + penalty I)^-1 X'y from X'X and X'y of standardised, centred x."""
    return np.linalg.solve(gram + penalty * np.eye(gram.shape[0]), moment)


def fit_head(features: np.ndarray, q_adv: np.ndarray, groups: np.ndarray, folds: int = 5, seed: int = 0) -> RidgeHead:
    """Fit the head; ``groups`` (one per sample, e.g. the person) keep a person in one fold."""
    features, q_adv = np.asarray(features, np.float64), np.asarray(q_adv, np.float64)
    target = normal_scores(q_adv)
    unique = np.unique(groups)
    rng = np.random.default_rng(seed)
    if unique.size >= folds:
        fold_of_group = dict(zip(unique, rng.permutation(unique.size) % folds))
        fold = np.array([fold_of_group[g] for g in groups])
    else:  # too few people to keep each in one fold: folds of samples (the report says so)
        fold = rng.permutation(q_adv.size) % folds
    predicted = {penalty: np.empty_like(target) for penalty in PENALTIES}
    for k in range(folds):  # X'X once per fold, solved for every penalty
        train, test = fold != k, fold == k
        mean, scale = features[train].mean(0), features[train].std(0) + 1e-8
        x = (features[train] - mean) / scale
        gram, moment, bias = x.T @ x, x.T @ (target[train] - target[train].mean()), target[train].mean()
        for penalty in PENALTIES:
            predicted[penalty][test] = ((features[test] - mean) / scale) @ _solve(gram, moment, penalty) + bias
    cv = {penalty: float(spearmanr(predicted[penalty], q_adv).statistic) for penalty in PENALTIES}
    best = max(cv, key=cv.get)
    mean, scale = features.mean(0), features.std(0) + 1e-8
    x = (features - mean) / scale
    weight, bias = _solve(x.T @ x, x.T @ (target - target.mean()), best), float(target.mean())
    quantiles = np.quantile(q_adv, np.linspace(0, 1, QUANTILE_POINTS))
    report = {"cv_spearman_q_adv": cv[best], "cv_folds_by": "identity" if unique.size >= folds else "sample", "cv_by_penalty": {f"{p:g}": round(v, 4) for p, v in cv.items()}, "samples": int(q_adv.size)}
    return RidgeHead(mean, scale, weight, bias, quantiles, best, report)


def q_adv_from_score(score: torch.Tensor, quantiles: torch.Tensor) -> torch.Tensor:
    """``RidgeHead.predict``'s last step in torch (so that it exports to ONNX): a normal score
    through ndtr, then np.interp over ``quantiles`` at evenly spaced probabilities 0 .. 1."""
    probability = 0.5 * (1 + torch.erf(score / math.sqrt(2)))
    position = probability * (quantiles.numel() - 1)
    low = position.floor().clamp(0, quantiles.numel() - 2)
    fraction = position - low
    low = low.long()
    return quantiles[low] * (1 - fraction) + quantiles[low + 1] * fraction


class RidgeModule(nn.Module):
    """A ``RidgeHead`` as torch operations: features (N, F) -> q_adv (N,)."""

    def __init__(self, head: RidgeHead) -> None:
        super().__init__()
        for name in ("mean", "scale", "weight", "quantiles"):
            self.register_buffer(name, torch.as_tensor(getattr(head, name), dtype=torch.float32))
        self.bias = float(head.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return q_adv_from_score(((features - self.mean) / self.scale) @ self.weight + self.bias, self.quantiles)
