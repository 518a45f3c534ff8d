"""A pose-only quality: how far the nose sits from the eyes' midline (a yaw proxy).

    python benchmarks/pose_proxy.py [--out runs/pose_proxy.csv] [--max-images N]

Detects each LFW View 2 pair image's largest face (YuNet, one pass, as the published tables)
and writes a CSV that `faceqan evaluate --quality-csv pose=FILE` reads: ``quality`` is minus
the nose tip's offset from the midpoint of the eyes along the eye line, in inter-ocular
distances (0 = frontal). If this knows nothing about the image but head turn and still
ranks recognition errors about as well as FaceQAN's flip term s_f, pose is what those
errors follow on LFW.
"""

from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path

import numpy as np

from faceqan.evaluation.datasets import load_protocol
from faceqan.faces.decode import decode_image
from faceqan.faces.detect import YuNetDetector

from faceqan.shared_data import given_or_shared_lfw


def yaw_proxy(landmarks: np.ndarray) -> float:
    """Signed nose offset from the eyes' midpoint along the eye line, in eye distances."""
    right_eye, left_eye, nose = landmarks[0], landmarks[1], landmarks[2]
    axis = left_eye - right_eye
    return float(np.dot(nose - (right_eye + left_eye) / 2, axis) / np.dot(axis, axis))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lfw", default=None, help="LFW folder (default: the shared data, $FACEQAN_SHARED)")
    parser.add_argument("--out", default="runs/pose_proxy.csv")
    parser.add_argument("--max-images", type=int, default=None, help="only the protocol's first N images")
    args = parser.parse_args()
    lfw = given_or_shared_lfw(args.lfw)
    images = load_protocol(str(lfw / "pairs.txt"), max_images=args.max_images).images
    detector = YuNetDetector(refine_landmarks=False)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    yaws = []
    with open(args.out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["path", "quality", "yaw", "status"])
        writer.writeheader()
        for path in images:
            faces = detector.detect(decode_image(path))
            if not faces:
                writer.writerow({"path": os.path.abspath(path), "quality": "", "yaw": "", "status": "no_face"})
                continue
            yaw = yaw_proxy(faces[0].landmarks)
            yaws.append(abs(yaw))
            writer.writerow({"path": os.path.abspath(path), "quality": -abs(yaw), "yaw": yaw, "status": "ok"})
    print(f"{len(images)} images, {len(yaws)} with a face; |yaw| median {np.median(yaws):.3f}, p90 {np.quantile(yaws, 0.9):.3f} -> {args.out}")


if __name__ == "__main__":
    main()
