"""The training images of the built-in students and one degraded copy of each, so that the
student sees the low-quality faces it must rank.

    python benchmarks/make_student_set.py [--lfw ../shared/data/lfw] [--out runs/student] [--seed 0] [--pool view1-train|extra]

``--pool view1-train`` (default): ``pairsDevTrain-images.txt`` (3,443 images; its people are
disjoint from ``pairsDevTest.txt``'s, on which the students are judged); copies under
OUT/degraded/, list OUT/images.txt. ``--pool extra``: every other LFW image in the folder that
is in neither View 1 file and whose person is not among ``pairsDevTest.txt``'s (3,569 images of
2,291 people in the shared data), sorted by name; copies under OUT/degraded_extra/, list
OUT/images_extra.txt. Each copy is blur, noise, down-scaling, JPEG, occlusion or brightness,
kind and strength drawn from a seeded generator, written as PNG. The list holds the originals
then the copies, for ``faceqan score`` to label. Rerunning rewrites the same files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from faceqan.evaluation.protocols import read_lfw_pairs
from faceqan.shared_data import given_or_shared_lfw

KINDS = ("blur", "noise", "downscale", "jpeg", "occlusion", "brightness")


def degrade(rgb: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """One degradation of an RGB uint8 image, its strength drawn from ``rng``."""
    height, width = rgb.shape[:2]
    if kind == "blur":
        return cv2.GaussianBlur(rgb, (0, 0), rng.uniform(1.0, 5.0))
    if kind == "noise":
        return np.clip(rgb + rng.normal(0, rng.uniform(10, 45), rgb.shape), 0, 255).astype(np.uint8)
    if kind == "downscale":
        factor = rng.uniform(1 / 8, 1 / 2)
        small = cv2.resize(rgb, (max(8, round(width * factor)), max(8, round(height * factor))), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    if kind == "jpeg":
        ok, data = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(3, 25))])
        assert ok
        return cv2.imdecode(data, cv2.IMREAD_COLOR)[:, :, ::-1]
    if kind == "occlusion":
        out = rgb.copy()
        # LFW faces sit near the centre: a grey block over part of the central region.
        h, w = int(rng.uniform(0.15, 0.35) * height), int(rng.uniform(0.25, 0.5) * width)
        y, x = int(rng.uniform(0.3, 0.65) * height) - h // 2, int(rng.uniform(0.35, 0.65) * width) - w // 2
        out[max(0, y) : y + h, max(0, x) : x + w] = int(rng.integers(0, 256))
        return out
    if kind == "brightness":
        gain = rng.uniform(0.25, 0.6) if rng.random() < 0.5 else rng.uniform(1.6, 2.6)
        return np.clip(rgb.astype(np.float32) * gain, 0, 255).astype(np.uint8)
    raise ValueError(f"unknown degradation {kind!r}")


def extra_pool(lfw: Path) -> list[Path]:
    """LFW images in neither View 1 file whose person is not among View 1's test people."""
    train, test = (read_lfw_pairs(lfw / name) for name in ("pairsDevTrain.txt", "pairsDevTest.txt"))
    view1 = {Path(image) for image in train.images + test.images}
    test_people = {Path(image).parent.name for image in test.images}
    present = sorted((lfw / "images_deepfunneled").glob("*/*.jpg"), key=lambda path: (path.parent.name, path.name))
    return [path for path in present if path not in view1 and path.parent.name not in test_people]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lfw", type=Path, default=None, help="LFW folder (default: the shared data, $FACEQAN_SHARED)")
    parser.add_argument("--out", type=Path, default=Path("runs/student"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pool", choices=("view1-train", "extra"), default="view1-train")
    args = parser.parse_args()
    args.lfw = given_or_shared_lfw(args.lfw)
    if args.pool == "extra":
        originals = extra_pool(args.lfw)
        copies_dir, listing = "degraded_extra", "images_extra.txt"
    else:
        entries = [line.split() for line in (args.lfw / "pairsDevTrain-images.txt").read_text().splitlines() if line.strip()]
        originals = [args.lfw / "images_deepfunneled" / name / f"{name}_{int(number):04d}.jpg" for name, number in entries]
        copies_dir, listing = "degraded", "images.txt"
    rng = np.random.default_rng(args.seed)
    copies = []
    for path in originals:
        kind = KINDS[int(rng.integers(len(KINDS)))]
        rgb = cv2.imread(str(path), cv2.IMREAD_COLOR)[:, :, ::-1]
        target = args.out / copies_dir / path.parent.name / f"{path.stem}_{kind}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(target), np.ascontiguousarray(degrade(rgb, kind, rng)[:, :, ::-1]))
        copies.append(target.resolve())
    (args.out / listing).write_text("".join(f"{p.resolve()}\n" for p in originals + copies))
    counts = {kind: sum(p.stem.endswith(kind) for p in copies) for kind in KINDS}
    print(f"{len(originals)} originals and {len(copies)} degraded copies ({counts}) -> {args.out / listing}")


if __name__ == "__main__":
    main()
