"""Does FaceQAN score a degraded copy of a face lower than the original?

    cd benchmarks && python degradation_check.py --images 200 [--model dlib] [--eps EPS]

Takes the first N images of LFW View 2 (pairs.txt order), makes a blurred (Gaussian,
sigma 2) and downscaled (1/4, then back up) copy of each, scores both through the full
pipeline (detection + alignment) and prints the fraction where the copy scores lower.
Also prints the seconds per image of the scoring.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from faceqan.evaluation.protocols import read_lfw_pairs
from faceqan.faces.decode import decode_image
from faceqan.faces.prepare import FacePreparer
from faceqan.models import create_model
from faceqan.methods import create_method
from faceqan.pipeline import score_batch

from faceqan.shared_data import given_or_shared_lfw


def degrade(rgb: np.ndarray) -> np.ndarray:
    height, width = rgb.shape[:2]
    blurred = cv2.GaussianBlur(rgb, (0, 0), 2)
    small = cv2.resize(blurred, (width // 4, height // 4), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--model", default="dlib")
    parser.add_argument("--eps", type=float, default=None, help="default: the model's")
    parser.add_argument("--variant", default="paper")
    parser.add_argument("--lfw", default=None, help="LFW folder (default: the shared data, $FACEQAN_SHARED)")
    args = parser.parse_args()

    lfw = given_or_shared_lfw(args.lfw)
    paths = read_lfw_pairs(lfw / "pairs.txt").images[: args.images]
    model = create_model(args.model)
    method = create_method("faceqan", model, eps=args.eps, variant=args.variant)
    preparer = FacePreparer(model.spec)
    lower, compared, seconds = 0, 0, 0.0
    for path in paths:
        rgb = decode_image(path)
        faces = preparer.from_array(path, rgb) + preparer.from_array(path + " (degraded)", degrade(rgb))
        start = time.perf_counter()
        original, copy = score_batch(faces, method)
        seconds += time.perf_counter() - start
        if original["status"] == copy["status"] == "ok":
            compared += 1
            lower += copy["quality"] < original["quality"]
    print(f"model {args.model}, {method.describe()}: degraded copy scores lower in {lower}/{compared} = {lower / compared:.3f}")
    print(f"FaceQAN scoring: {seconds / (2 * len(paths)):.3f} s per image (attack only, detection excluded)")


if __name__ == "__main__":
    main()
