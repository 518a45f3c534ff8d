"""Decoding every kind of image file a photo folder holds, and refusing the rest clearly."""

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from faceqan.errors import DecodeError
from faceqan.faces.decode import NEUTRAL_BACKGROUND, decode_bytes, decode_image

from helpers import face_rgb, jpeg_bytes


def _save(tmp_path, name, image, **kwargs):
    path = tmp_path / name
    image.save(path, **kwargs)
    return path


def test_greyscale_palette_cmyk_become_rgb(tmp_path):
    rgb = face_rgb()
    for name, image in {
        "grey.png": Image.fromarray(rgb).convert("L"),
        "palette.png": Image.fromarray(rgb).convert("P"),
        "cmyk.jpg": Image.fromarray(rgb).convert("CMYK"),
    }.items():
        out = decode_image(_save(tmp_path, name, image))
        assert out.shape == rgb.shape and out.dtype == np.uint8, name
        assert np.abs(out.astype(int) - rgb).mean() < 40, name


def test_alpha_is_composited_on_neutral_grey(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:, :4, 3] = 255  # left half opaque red, right half transparent
    out = decode_image(_save(tmp_path, "a.png", Image.fromarray(rgba, "RGBA")))
    assert tuple(out[0, 0]) == (255, 0, 0)
    assert tuple(out[0, 7]) == NEUTRAL_BACKGROUND
    la = Image.fromarray(rgba[..., [0, 3]], "LA")
    assert tuple(decode_image(_save(tmp_path, "la.png", la))[0, 7]) == NEUTRAL_BACKGROUND


def test_16_bit_greyscale_is_scaled_to_8_bit(tmp_path):
    values = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(np.uint16)
    path = _save(tmp_path, "deep.png", Image.fromarray(values))
    out = decode_image(path)
    np.testing.assert_allclose(out[..., 0], np.round(values / 257), atol=1)


def test_exif_orientation_is_applied(tmp_path):
    rgb = np.zeros((20, 40, 3), np.uint8)
    rgb[:, :20] = 255  # white left half
    image = Image.fromarray(rgb)
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    out = decode_image(_save(tmp_path, "phone.jpg", image, exif=exif.tobytes(), quality=95))
    assert out.shape == (40, 20, 3)
    assert out[:20].mean() > 200 and out[20:].mean() < 50  # left half is now the top


def test_animated_gif_gives_its_first_frame(tmp_path):
    frames = [Image.fromarray(np.full((10, 10, 3), v, np.uint8)) for v in (200, 20)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    assert decode_image(path).mean() > 150


@pytest.mark.parametrize(
    "content, message",
    [(b"", "empty file"), (b"plain text, no image", "not an image"), (jpeg_bytes(face_rgb())[:5000], "truncated")],
)
def test_bad_files_raise_decode_error(tmp_path, content, message):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(DecodeError, match=message):
        decode_image(path)


def test_missing_file(tmp_path):
    with pytest.raises(DecodeError, match="cannot read"):
        decode_image(tmp_path / "missing.jpg")


def test_pixel_limit(tmp_path):
    path = _save(tmp_path, "big.png", Image.new("L", (3000, 2000)))
    with pytest.raises(DecodeError, match="over the limit"):
        decode_image(path, max_pixels=5_000_000)
    assert decode_image(path, max_pixels=6_000_000).shape == (2000, 3000, 3)


def _png_prefix() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, format="PNG")
    return buffer.getvalue()[:40]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.binary(max_size=2000), st.binary(max_size=500).map(lambda b: _png_prefix() + b), st.binary(max_size=500).map(lambda b: jpeg_bytes(face_rgb())[:600] + b)))
def test_arbitrary_bytes_give_an_image_or_our_error(tmp_path, content):
    path = tmp_path / "fuzz.img"
    path.write_bytes(content)
    try:
        out = decode_image(path)
    except DecodeError:
        with pytest.raises(DecodeError):  # the same bytes uploaded fail the same way
            decode_bytes(content)
        return
    assert out.ndim == 3 and out.shape[2] == 3 and out.dtype == np.uint8
    np.testing.assert_array_equal(decode_bytes(content), out)
