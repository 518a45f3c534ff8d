"""Decode an image file into an RGB uint8 array, or raise ``DecodeError`` saying why.

Handles EXIF orientation, greyscale, palette, alpha (composited on neutral grey), CMYK,
16-bit and animated files (first frame); refuses empty, truncated, non-image and
over-large files (a pixel limit against decompression bombs).
"""

from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import DecodeError

DEFAULT_MAX_PIXELS = 50_000_000
NEUTRAL_BACKGROUND = (128, 128, 128)


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        values = np.asarray(image, dtype=np.float64)
        scale = 257.0 if values.max(initial=0) > 255 else 1.0
        image = Image.fromarray(np.clip(values / scale, 0, 255).astype(np.uint8), "L")
    elif mode == "F":
        raise DecodeError("floating-point images are not supported (their value range is unknown)")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*NEUTRAL_BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def decode_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read ``path`` as an (H, W, 3) uint8 RGB array."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DecodeError(f"cannot read file: {exc.strerror or exc}") from exc
    if size == 0:
        raise DecodeError("empty file")
    return _decode(path, max_pixels)


def decode_bytes(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """An encoded image held in memory (an upload) as an (H, W, 3) uint8 RGB array."""
    if not data:
        raise DecodeError("empty file")
    return _decode(io.BytesIO(data), max_pixels)


def _decode(source: Path | io.BytesIO, max_pixels: int) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            # Our own pixel limit is checked below; Pillow's warning would only repeat it.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise DecodeError(f"image is {width}x{height} = {width * height} pixels, over the limit of {max_pixels}")
                image.seek(0)
                image = ImageOps.exif_transpose(image)
                image.load()
                rgb = _to_rgb(image)
                return np.asarray(rgb, dtype=np.uint8).copy()
    except DecodeError:
        raise
    except UnidentifiedImageError as exc:
        raise DecodeError("not an image file (format not recognised)") from exc
    except Image.DecompressionBombError as exc:
        raise DecodeError(f"image too large: {exc}") from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, KeyError, struct.error) as exc:
        raise DecodeError(f"corrupt or truncated image: {exc}") from exc
