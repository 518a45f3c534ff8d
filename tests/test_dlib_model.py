"""The torch re-implementation of dlib's ResNet against dlib 20.0.1's own descriptors."""

import numpy as np
import pytest
import torch

from faceqan.faces.align import warp
from faceqan.faces.decode import decode_image
from faceqan.models.dlib_format import DlibFormatError
from faceqan.models.dlib_resnet import _strided_conv_input_grad, find_packaged_weights, load_dlib_resnet


def _cosine(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_random_images_match_dlib(dlib_model, dlib_reference):
    images = np.random.default_rng(20261129).integers(0, 256, size=(8, 150, 150, 3), dtype=np.uint8)
    np.testing.assert_array_equal(images, dlib_reference["random_images"])
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        ours = dlib_model(x).numpy()
    assert _cosine(ours, dlib_reference["random_descriptor"]).min() > 0.99999
    np.testing.assert_allclose(ours, dlib_reference["random_descriptor"], atol=1e-4)


def test_lfw_chips_match_dlib(dlib_model, dlib_reference, lfw_root):
    chips = [
        warp(decode_image(lfw_root / path), matrix.astype(np.float64), 150)
        for path, matrix in zip(dlib_reference["path"], dlib_reference["img_to_chip"])
    ]
    x = torch.from_numpy(np.stack(chips)).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        ours = torch.cat([dlib_model(x[i : i + 100]) for i in range(0, len(x), 100)]).numpy()
    cos = _cosine(ours, dlib_reference["descriptor"])
    # Our warp reproduces dlib's chip to about 0.5 grey levels, not exactly.
    assert np.median(cos) > 0.99995 and cos.min() > 0.999


def test_wrong_file_is_refused(tmp_path):
    bogus = tmp_path / "model.dat"
    bogus.write_bytes(b"not a dlib network" * 100)
    with pytest.raises(DlibFormatError, match="SHA-256"):
        load_dlib_resnet(bogus)
    with pytest.raises(DlibFormatError, match="input_rgb_image_sized"):
        load_dlib_resnet(bogus, check_hash=False)


def test_truncated_file_is_refused(tmp_path):
    data = find_packaged_weights().read_bytes()
    cut = tmp_path / "cut.dat"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DlibFormatError):
        load_dlib_resnet(cut, check_hash=False)


def test_frozen_first_layer_input_gradient_equals_autograds():
    from faceqan.models import create_model

    model = create_model("dlib").eval()
    generator = torch.Generator().manual_seed(0)
    images = torch.rand((3, 3, 150, 150), generator=generator) * 2 - 1
    directions = torch.randn((3, 128), generator=generator)

    def input_gradient() -> torch.Tensor:
        x = images.clone().requires_grad_(True)
        return torch.autograd.grad((model(x) * directions).sum(), x)[0]

    model.requires_grad_(False)
    polyphase = input_gradient()  # frozen weights: conv0's input gradient by polyphase convolution
    model.network.conv0.weight.requires_grad_(True)
    reference = input_gradient()  # trainable weights: torch's own convolution backward
    torch.testing.assert_close(polyphase, reference, rtol=1e-4, atol=1e-6)
    assert polyphase.abs().sum() > 0


@pytest.mark.parametrize(
    ("kernel", "stride", "size"),
    [((7, 7), 2, (150, 150)), ((7, 7), 2, (151, 149)), ((3, 5), 3, (20, 23)), ((2, 2), 2, (9, 8)), ((4, 4), 1, (10, 10))],
)
def test_polyphase_input_gradient_equals_autograds(kernel, stride, size):
    """Any kernel, stride and input size, including rows the strided forward never reaches."""
    generator = torch.Generator().manual_seed(1)
    weight = torch.randn((5, 3, *kernel), generator=generator)
    x = torch.randn((2, 3, *size), generator=generator, requires_grad=True)
    out = torch.nn.functional.conv2d(x, weight, None, stride)
    grad = torch.randn(out.shape, generator=generator)
    reference = torch.autograd.grad(out, x, grad)[0]
    ours = _strided_conv_input_grad(grad.contiguous(memory_format=torch.channels_last), weight, stride, size)
    assert ours.shape == reference.shape
    torch.testing.assert_close(ours, reference, rtol=1e-4, atol=1e-5)
