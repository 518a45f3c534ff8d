"""The built-in demo: a face photo (scikit-image's astronaut) and degraded copies, scored and ranked."""

from __future__ import annotations

import cv2
import numpy as np
from skimage import data

from .faces.prepare import FacePreparer
from .methods import QualityMethod, create_method
from .models.spec import FaceModel
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


def demo_rows(model: FaceModel, method: QualityMethod | None = None) -> list[dict]:
    """The demo's rows with ``model`` (and FaceQAN at the model's defaults unless ``method``)."""
    return run_demo(method or create_method("faceqan", model), FacePreparer(model.spec))


def demo_table(model_name: str, method: QualityMethod, rows: list[dict]) -> str:
    """What ``faceqan demo`` prints (and README.md shows: tests/test_readme.py compares them)."""
    options = method.options()
    lines = [
        f"FaceQAN quality with model {model_name} (eps={options['eps']:g}, l={options['steps']}, k={options['copies']}, p={options['power']:g}, {options['variant']}):",
        f"{'rank':>4}  {'sample':<22} {'quality':>8} {'mean_sim':>9} {'std_sim':>8} {'flip_sim':>8}",
    ]
    for rank, row in enumerate(rows, 1):
        if row["status"] == "ok":
            note = "" if row["landmarks"] == "refined" else f"  (landmarks: {row['landmarks']})"
            lines.append(f"{rank:>4}  {row['path']:<22} {row['quality']:8.4f} {row['mean_sim']:9.5f} {row['std_sim']:8.5f} {row['flip_sim']:8.4f}{note}")
        else:
            lines.append(f"{rank:>4}  {row['path']:<22} {row['status']}: {row['error']}")
    return "\n".join(lines)
