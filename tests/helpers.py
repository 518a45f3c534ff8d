"""Builders of test inputs: real faces and every kind of bad file."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data


def face_rgb() -> np.ndarray:
    return data.astronaut()


def write_face_folder(folder: Path, count: int = 3) -> list[Path]:
    """Distinct real-face JPEGs (the astronaut, brightened a little differently each)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        rgb = np.clip(face_rgb().astype(int) + 6 * i, 0, 255).astype(np.uint8)
        path = folder / f"face_{i:02d}.jpg"
        Image.fromarray(rgb).save(path, quality=92)
        paths.append(path)
    return paths


def jpeg_bytes(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def write_bad_cases(folder: Path) -> dict[str, str]:
    """One file per bad case; returns file name -> expected status."""
    folder.mkdir(parents=True, exist_ok=True)
    full = jpeg_bytes(face_rgb())
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "truncated.jpg").write_bytes(full[: len(full) // 3])
    (folder / "not_an_image.png").write_text("hello, I am text pretending to be a PNG\n")
    Image.fromarray(np.full((64, 64, 3), 120, np.uint8)).save(folder / "no_face.png")
    Image.fromarray(np.zeros((4000, 4000), np.uint8)).save(folder / "huge.png")
    return {
        "empty.jpg": "decode_error",
        "truncated.jpg": "decode_error",
        "not_an_image.png": "decode_error",
        "no_face.png": "no_face",
        "huge.png": "decode_error",
    }
