"""Builders of test inputs: real faces and every kind of bad file."""

from __future__ import annotations

import io
import signal
import subprocess
import sys
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


def write_odd_mode_faces(folder: Path) -> list[str]:
    """The face in every odd encoding a photo folder holds; each must decode and score."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb = face_rgb()
    image = Image.fromarray(rgb)
    image.convert("L").save(folder / "grey.png")
    image.convert("P").save(folder / "palette.png")
    image.convert("CMYK").save(folder / "cmyk.jpg", quality=92)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    rgba[:40, :, 3] = 0  # a transparent band at the top, away from the face
    Image.fromarray(rgba, "RGBA").save(folder / "alpha.png")
    Image.fromarray(rgb[..., 1].astype(np.uint16) * 257).save(folder / "deep16.png")
    rotated = Image.fromarray(np.ascontiguousarray(np.rot90(rgb, 1)))  # stored sideways
    exif = rotated.getexif()
    exif[0x0112] = 6  # displayed rotated 90 degrees clockwise, i.e. upright again
    rotated.save(folder / "phone.jpg", exif=exif.tobytes(), quality=92)
    frames = [image.convert("P"), Image.new("RGB", image.size, (10, 10, 10)).convert("P")]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:])
    return ["grey.png", "palette.png", "cmyk.jpg", "alpha.png", "deep16.png", "phone.jpg", "animated.gif"]


def write_two_faces(path: Path) -> None:
    """Two faces side by side, the left one larger."""
    rgb = face_rgb()
    small = np.asarray(Image.fromarray(rgb).resize((384, 384)))
    canvas = np.full((512, 512 + 384, 3), 128, np.uint8)
    canvas[:, :512] = rgb
    canvas[64:448, 512:] = small
    Image.fromarray(canvas).save(path, quality=92)


def start_cli(*args: str, **popen_options) -> subprocess.Popen:
    """``python -m faceqan.cli ARGS`` as a subprocess that Ctrl-C (SIGINT) stops, even when the
    test run itself was started in the background, where SIGINT arrives ignored and children
    would inherit that."""
    return subprocess.Popen(
        [sys.executable, "-m", "faceqan.cli", *args],
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        **popen_options,
    )
