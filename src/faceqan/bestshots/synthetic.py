"""A seeded test clip from face photos: each person's photo on a grey canvas, every frame
degraded (blur, noise, occlusion, down-scaling or motion blur) except one clean frame per person
at a known time, the people swapping places halfway. Used by the tests and
``benchmarks/pick_speed.py``; it shows what ``faceqan pick`` should find."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

DEGRADATIONS = ("blur", "noise", "occlusion", "downscale", "motion")


@dataclass
class ClipTruth:
    """What was put in the clip: per person, the frame shown clean and where it stood then."""

    frames: int
    fps: float
    clean_frame: list[int]
    clean_box: list[tuple[int, int, int, int]]  # (x, y, w, h) of the person's photo in its clean frame
    kinds: list[list[str]]  # per frame, per person: the degradation shown ("clean" for none)


def degrade(rgb: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """``rgb`` (uint8) made worse by ``kind``, strength drawn from ``rng``."""
    side = rgb.shape[0]
    if kind == "blur":
        return cv2.GaussianBlur(rgb, (0, 0), rng.uniform(3.5, 5.0))
    if kind == "noise":
        return np.clip(rgb + rng.normal(0, rng.uniform(45, 65), rgb.shape), 0, 255).astype(np.uint8)
    if kind == "occlusion":  # a block over one side of the face, as a hand or an object would be
        out = rgb.copy()
        top, width = int(side * rng.uniform(0.3, 0.4)), int(side * rng.uniform(0.2, 0.26))
        left = int(side * 0.5) if rng.random() < 0.5 else int(side * 0.5) - width
        out[top : top + int(side * 0.4), left : left + width] = int(rng.integers(0, 60))
        return out
    if kind == "downscale":
        small = max(12, int(side * rng.uniform(0.12, 0.18)))
        return cv2.resize(cv2.resize(rgb, (small, small), interpolation=cv2.INTER_AREA), (side, side), interpolation=cv2.INTER_LINEAR)
    if kind == "motion":
        length = int(rng.integers(15, 22))
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2, :] = 1.0 / length
        rotation = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), float(rng.uniform(0, 180)), 1.0)
        kernel = cv2.warpAffine(kernel, rotation, (length, length))
        return cv2.filter2D(rgb, -1, kernel / max(kernel.sum(), 1e-6))
    raise ValueError(f"unknown degradation {kind!r}")


def _read_rgb(photo: str | Path) -> np.ndarray:
    bgr = cv2.imread(str(photo), cv2.IMREAD_COLOR)
    if bgr is None:
        raise OSError(f"cannot read the photo {photo}")
    return bgr[:, :, ::-1]


def make_clip(path: str | Path, photos: list[str | Path], frames: int = 40, fps: float = 25.0, size: tuple[int, int] = (640, 480),
              seed: int = 0, clean: bool = True) -> ClipTruth:  # fmt: skip
    """Write the clip (codec from the suffix: .avi MJPG, else mp4v) and say what it holds."""
    width, height = size
    count = len(photos)
    side = min(250, width // count - 10, height - 20)
    faces = [cv2.resize(_read_rgb(photo), (side, side), interpolation=cv2.INTER_AREA) for photo in photos]
    slots = [int((i + 0.5) * width / count - side / 2) for i in range(count)]
    rng = np.random.default_rng(seed)
    # person i is clean in frame clean_frame[i]: spread over the clip, before and after the swap
    clean_frame = [int(frames * (i + 0.5) / (count + 0.5)) + 1 for i in range(count)] if clean else []
    clean_box: list[tuple[int, int, int, int]] = []
    kinds: list[list[str]] = []
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if str(path).endswith(".avi") else "mp4v"))
    writer = cv2.VideoWriter(str(path), fourcc, fps, (width, height))
    if not writer.isOpened():
        raise OSError(f"OpenCV cannot write the video {path}")
    try:
        for index in range(frames):
            canvas = np.full((height, width, 3), 118, np.uint8)
            kinds.append([""] * count)
            order = range(count) if index < frames // 2 else reversed(range(count))  # halfway the people swap places
            for slot, person in zip(slots, order):
                x = min(max(0, slot + int(rng.integers(-6, 7))), width - side)
                y = (height - side) // 2 + int(rng.integers(-6, 7))
                shown = faces[person]
                if person < len(clean_frame) and index == clean_frame[person]:
                    clean_box.append((x, y, side, side))
                    kinds[-1][person] = "clean"
                else:
                    kinds[-1][person] = DEGRADATIONS[int(rng.integers(len(DEGRADATIONS)))]
                    shown = degrade(shown, kinds[-1][person], rng)
                canvas[y : y + side, x : x + side] = shown
            writer.write(np.ascontiguousarray(canvas[:, :, ::-1]))
    finally:
        writer.release()
    return ClipTruth(frames, fps, clean_frame, clean_box, kinds)
