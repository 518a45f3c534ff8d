"""The built-in demo: a face photo (scikit-image's astronaut) and degraded copies, scored and ranked."""

from __future__ import annotations

import cv2
import numpy as np
from skimage import data

from .faces.prepare import FacePreparer
from .pipeline import Method, score_batch


def degraded_samples() -> dict[str, np.ndarray]:
    """The astronaut photo and versions of it degraded in ways that hurt face recognition."""
    rgb = data.astronaut()
    height, width = rgb.shape[:2]
    rng = np.random.default_rng(0)
    occluded = rgb.copy()
    occluded[90:135, 150:240] = 128  # a grey band over the eyes
    small = cv2.resize(rgb, (width // 8, height // 8), interpolation=cv2.INTER_AREA)
    rotation = cv2.getRotationMatrix2D((width / 2, height / 2), 30, 1.0)
    return {
        "original": rgb,
        "blur sigma 2": cv2.GaussianBlur(rgb, (0, 0), 2),
        "blur sigma 5": cv2.GaussianBlur(rgb, (0, 0), 5),
        "noise sigma 40": np.clip(rgb + rng.normal(0, 40, rgb.shape), 0, 255).astype(np.uint8),
        "low resolution 1/8": cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR),
        "occluded eyes": occluded,
        "rotated 30 deg": cv2.warpAffine(rgb, rotation, (width, height), borderMode=cv2.BORDER_REFLECT),
    }


def run_demo(method: Method, preparer: FacePreparer) -> list[dict]:
    """Rows for every sample, best quality first (samples without a face last)."""
    faces = [face for name, rgb in degraded_samples().items() for face in preparer.from_array(name, rgb)]
    rows = score_batch(faces, method)
    return sorted(rows, key=lambda r: (r["status"] != "ok", -(r.get("quality") or 0.0)))
