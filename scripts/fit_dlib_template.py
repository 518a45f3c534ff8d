"""Fit dlib's landmark template: where YuNet's five points fall in dlib's own 150x150 chip.

    python scripts/fit_dlib_template.py [--landmarks single|refined] [--shared ../shared]

dlib aligns with its own 5-point predictor (eye corners, nose base), YuNet gives eye centres,
nose tip and mouth corners, so dlib's template cannot be reused: each fixture face's YuNet
points are mapped through dlib's exact image-to-chip transform (shared/fixtures/
dlib_reference.npz, from get_face_chip with padding 0.25), and the template is their mean.
Prints the template and, as a check, the median Euclidean distance between the descriptors
of chips aligned with it and dlib's own descriptors of the same faces.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch

from faceqan import shared_data
from faceqan.faces.align import align_face
from faceqan.faces.decode import decode_image
from faceqan.faces.detect import YuNetDetector


def fit_template(reference, lfw: Path, detector: YuNetDetector) -> tuple[np.ndarray, list[np.ndarray]]:
    """The mean chip position of each landmark, and each face's landmarks (image pixels)."""
    in_chip, landmarks = [], []
    for path, to_chip in zip(reference["path"], reference["img_to_chip"]):
        rgb = decode_image(lfw / str(path))
        face = detector.detect(rgb)[0]
        landmarks.append((rgb, face.landmarks))
        in_chip.append(np.c_[face.landmarks, np.ones(5)] @ to_chip.T)
    return np.mean(in_chip, axis=0), landmarks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--landmarks", choices=("single", "refined"), default="single")
    parser.add_argument("--shared", default=None, help="the shared data folder (default: $FACEQAN_SHARED, else ../shared)")
    args = parser.parse_args()
    if args.shared:
        os.environ[shared_data.ENVIRONMENT_VARIABLE] = args.shared
    reference = np.load(shared_data.require(shared_data.dlib_fixture))
    lfw = shared_data.require(shared_data.lfw)
    template, faces = fit_template(reference, lfw, YuNetDetector(refine_landmarks=args.landmarks == "refined"))
    print("template (x, y) per point:", np.round(template, 2).tolist())

    from faceqan.models import create_model

    model = create_model("dlib")
    chips = np.stack([align_face(rgb, points, template, 150) for rgb, points in faces])
    with torch.no_grad():
        ours = model(torch.from_numpy(chips).permute(0, 3, 1, 2).float() / 127.5 - 1).numpy()
    distance = np.linalg.norm(ours - reference["descriptor"], axis=1)
    print(f"descriptor distance to dlib's own: median {np.median(distance):.4f}, 95th percentile {np.percentile(distance, 95):.4f}")


if __name__ == "__main__":
    main()
