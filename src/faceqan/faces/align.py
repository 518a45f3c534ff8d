"""5-point similarity alignment of a face to a model's landmark template."""

from __future__ import annotations

import cv2
import numpy as np

from ..spec import ARCFACE_112

__all__ = ["ARCFACE_112", "align_face", "similarity_matrix", "warp"]


def similarity_matrix(landmarks: np.ndarray, template: np.ndarray) -> np.ndarray:
    """The 2x3 least-squares similarity transform (Umeyama 1991) taking landmarks to template, in
    NumPy (scikit-image's SimilarityTransform gave the same to 1e-13 and the same chips on 400 LFW
    faces; NumPy alone keeps faceqan.lite free of scikit-image)."""
    src, dst = np.asarray(landmarks, np.float64), np.asarray(template, np.float64)
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_centred, dst_centred = src - src_mean, dst - dst_mean
    spread = src_centred.var(0).sum()
    if not np.isfinite(spread) or spread <= 0:
        raise ValueError("degenerate landmarks: no similarity transform fits them")
    covariance = dst_centred.T @ src_centred / len(src)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.ones(2)
    if np.linalg.det(covariance) < 0:
        sign[-1] = -1
    rotation = u @ np.diag(sign) @ vt
    scale = (singular * sign).sum() / spread
    translation = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, translation[:, None]])


def warp(rgb: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Crop a size x size chip with a 2x3 image-to-chip matrix (bilinear, black border as dlib and insightface use)."""
    return cv2.warpAffine(rgb, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def align_face(rgb: np.ndarray, landmarks: np.ndarray, template: np.ndarray, size: int) -> np.ndarray:
    """The aligned size x size RGB chip of the face whose 5 landmarks are given."""
    return warp(rgb, similarity_matrix(landmarks, template), size)
