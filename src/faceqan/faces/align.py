"""5-point similarity alignment of a face to a model's landmark template."""

from __future__ import annotations

import cv2
import numpy as np
from skimage.transform import SimilarityTransform

from ..spec import ARCFACE_112

__all__ = ["ARCFACE_112", "align_face", "similarity_matrix", "warp"]


def similarity_matrix(landmarks: np.ndarray, template: np.ndarray) -> np.ndarray:
    """The 2x3 least-squares similarity transform (Umeyama) taking landmarks to template."""
    transform = SimilarityTransform.from_estimate(np.asarray(landmarks, np.float64), np.asarray(template, np.float64))
    if not transform:
        raise ValueError("degenerate landmarks: no similarity transform fits them")
    return transform.params[:2]


def warp(rgb: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Crop a size x size chip with a 2x3 image-to-chip matrix (bilinear, black border as dlib and insightface use)."""
    return cv2.warpAffine(rgb, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def align_face(rgb: np.ndarray, landmarks: np.ndarray, template: np.ndarray, size: int) -> np.ndarray:
    """The aligned size x size RGB chip of the face whose 5 landmarks are given."""
    return warp(rgb, similarity_matrix(landmarks, template), size)
