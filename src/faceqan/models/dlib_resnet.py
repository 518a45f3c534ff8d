"""dlib's ResNet face descriptor (dlib_face_recognition_resnet_model_v1) re-implemented in PyTorch.

The weights come from the .dat file in the PyPI package ``face_recognition_models`` (CC0);
dlib itself is not needed. The network (dlib's ``anet_type``) is a 29-conv ResNet on a
150x150 RGB chip with a 128-d output; the quirks that matter for equivalence are the
unpadded stride-2 convolutions and pools, and dlib's ``add_prev`` which zero-pads the
smaller of its two inputs (channels, height, width: at the end) to the larger shape.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .dlib_format import DlibFormatError, DlibLayer, read_layers

WEIGHTS_FILE = "dlib_face_recognition_resnet_model_v1.dat"
WEIGHTS_SHA256 = "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"
INPUT_SIZE = 150

# (filters, number of plain residual blocks, whether the stage starts with a down block),
# from the input to the output.
_STAGES = [(32, 3, False), (64, 3, True), (128, 2, True), (256, 2, True), (256, 0, True)]


def find_packaged_weights(filename: str = WEIGHTS_FILE) -> Path:
    """Locate a model file inside the installed ``face_recognition_models`` package.

    We never import that package: its ``__init__`` needs ``pkg_resources``, which recent
    setuptools no longer ships.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "the PyPI package 'face_recognition_models' is not installed; "
            "run `pip install face_recognition_models` (it ships the dlib model weights)"
        )
    path = Path(spec.origin).parent / "models" / filename
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the face_recognition_models package")
    return path


def _pad_add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib add_prev: sum of two NCHW tensors, the smaller zero-padded at the end."""
    shape = [max(x, y) for x, y in zip(a.shape[1:], b.shape[1:])]

    def pad(t: torch.Tensor) -> torch.Tensor:
        c, h, w = t.shape[1:]
        if (c, h, w) == tuple(shape):
            return t
        return F.pad(t, (0, shape[2] - w, 0, shape[1] - h, 0, shape[0] - c))

    return pad(a) + pad(b)


class Affine(nn.Module):
    """dlib's affine layer: per-channel scale and shift (a frozen batch norm)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma + self.beta


class ResidualBlock(nn.Module):
    """relu(x + affine(con(relu(affine(con(x)))))); the down variant uses stride 2 with
    no padding on the first conv and a 2x2 average pool on the skip path."""

    def __init__(self, in_channels: int, channels: int, down: bool) -> None:
        super().__init__()
        self.down = down
        stride, padding = (2, 0) if down else (1, 1)
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, padding)
        self.affine1 = Affine(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.affine2 = Affine(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.affine2(self.conv2(F.relu(self.affine1(self.conv1(x)))))
        skip = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(_pad_add(y, skip))


def _polyphase_kernel(weight: torch.Tensor, stride: int) -> torch.Tensor:
    """The kernel of a stride-1 convolution that gives a strided convolution's input gradient,
    one output channel per (row phase, column phase, input channel), padded to a multiple of 8
    channels (oneDNN's vector width on this CPU: 12 -> 16 channels took 6.1 -> 5.1 ms)."""
    out_channels, in_channels, rows, cols = weight.shape
    taps = -(-max(rows, cols) // stride)  # sub-kernel size: ceil(kernel / stride)
    padded = F.pad(weight, (0, taps * stride - cols, 0, taps * stride - rows))
    # Kernel index u = stride * m + r: split it, flip m (a correlation of the gradient).
    phases = padded.reshape(out_channels, in_channels, taps, stride, taps, stride).flip(2, 4)
    kernel = phases.permute(3, 5, 1, 0, 2, 4).reshape(stride * stride * in_channels, out_channels, taps, taps)
    spare = -kernel.shape[0] % 8
    return F.pad(kernel, (0, 0, 0, 0, 0, 0, 0, spare)).contiguous(memory_format=torch.channels_last)


def _strided_conv_input_grad(grad: torch.Tensor, weight: torch.Tensor, stride: int, input_size: tuple[int, int]) -> torch.Tensor:
    """Input gradient of an unpadded strided convolution as one stride-1 convolution per output
    phase (all phases in one call), interleaved back into the input's pixel grid."""
    in_channels = weight.shape[1]
    kernel = _polyphase_kernel(weight, stride)
    taps = kernel.shape[-1]
    phases = F.conv2d(grad, kernel, padding=taps - 1)[:, : stride * stride * in_channels]
    batch, _, rows, cols = phases.shape
    nhwc = phases.permute(0, 2, 3, 1).reshape(batch, rows, cols, stride, stride, in_channels)
    pixels = nhwc.permute(0, 1, 3, 2, 4, 5).reshape(batch, rows * stride, cols * stride, in_channels)
    height, width = input_size
    # Rows / columns the strided forward never reached get no gradient.
    pixels = F.pad(pixels, (0, 0, 0, max(0, width - cols * stride), 0, max(0, height - rows * stride)))
    return pixels[:, :height, :width].permute(0, 3, 1, 2)


class _PolyphaseInputGradConv(torch.autograd.Function):
    """An unpadded strided convolution with frozen weights whose input gradient is computed by
    `_strided_conv_input_grad`. For dlib's first layer (3 -> 32 channels, 7x7, stride 2, 10
    copies) the CPU's convolution backward takes about 16 ms against 3.6 ms for the forward, a
    transposed convolution 11.3 ms, the polyphase convolution 5.3 ms (same gradient to 4e-5)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int) -> torch.Tensor:
        out = F.conv2d(x, weight, bias, stride)
        ctx.save_for_backward(weight)
        ctx.stride, ctx.input_size = stride, tuple(x.shape[-2:])
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (weight,) = ctx.saved_tensors
        return _strided_conv_input_grad(grad, weight, ctx.stride, ctx.input_size), None, None, None


class DlibResNet(nn.Module):
    """The network on dlib's own input: RGB 0..255 floats, (N, 3, 150, 150)."""

    def __init__(self, channel_means: tuple[float, float, float] = (122.782, 117.001, 104.298)) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(channel_means).view(1, 3, 1, 1))
        self.conv0 = nn.Conv2d(3, 32, 7, 2, 0)
        self.affine0 = Affine(32)
        blocks, channels = [], 32
        for filters, plain, down in _STAGES:
            if down:
                blocks.append(ResidualBlock(channels, filters, True))
                channels = filters
            blocks += [ResidualBlock(filters, filters, False) for _ in range(plain)]
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(256, 128, bias=False)

    def forward(self, rgb255: torch.Tensor) -> torch.Tensor:
        x = (rgb255 - self.mean) / 256.0
        conv0 = self.conv0
        frozen = not conv0.weight.requires_grad and (conv0.bias is None or not conv0.bias.requires_grad)
        if frozen and x.requires_grad and torch.is_grad_enabled():
            x = _PolyphaseInputGradConv.apply(x, conv0.weight, conv0.bias, conv0.stride[0])
        else:
            x = conv0(x)
        x = F.max_pool2d(F.relu(self.affine0(x)), 3, 2)
        x = self.blocks(x)
        return self.fc(x.mean(dim=(2, 3)))

    def parameterised_layers(self) -> list[nn.Module]:
        """Conv, affine and fc layers in data-flow order, matching the file's order."""
        layers: list[nn.Module] = [self.conv0, self.affine0]
        for block in self.blocks:
            layers += [block.conv1, block.affine1, block.conv2, block.affine2]
        return [*layers, self.fc]


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise DlibFormatError(message)


def _load_layer(module: nn.Module, layer: DlibLayer, index: int) -> None:
    where = f"layer {index} ({layer.kind})"
    params = torch.from_numpy(np.ascontiguousarray(layer.params))
    if isinstance(module, nn.Conv2d):
        _expect(layer.kind == "con", f"{where}: expected a conv layer")
        filters, nr, nc, sy, sx, py, px = layer.ints
        _expect(
            (filters, nr, nc, sy, sx, py, px)
            == (module.out_channels, *module.kernel_size, *module.stride, *module.padding),
            f"{where}: conv hyper-parameters {layer.ints} differ from the expected architecture",
        )
        weight_count = module.weight.numel()
        _expect(params.numel() == weight_count + filters, f"{where}: wrong parameter count")
        module.weight.data.copy_(params[:weight_count].view_as(module.weight))
        module.bias.data.copy_(params[weight_count:])
    elif isinstance(module, Affine):
        _expect(layer.kind == "affine", f"{where}: expected an affine layer")
        channels = module.gamma.numel()
        _expect(params.numel() == 2 * channels, f"{where}: wrong parameter count")
        module.gamma.data.copy_(params[:channels].view_as(module.gamma))
        module.beta.data.copy_(params[channels:].view_as(module.beta))
    else:
        _expect(layer.kind == "fc" and layer.ints == [128, 256], f"{where}: expected fc 256->128")
        # dlib stores the fc weights as (inputs, outputs).
        module.weight.data.copy_(params.view(256, 128).t())


def load_dlib_resnet(path: str | Path | None = None, check_hash: bool = True) -> DlibResNet:
    """Build the torch network from dlib's .dat file (default: the packaged one)."""
    path = Path(path) if path is not None else find_packaged_weights()
    data = path.read_bytes()
    if check_hash:
        digest = hashlib.sha256(data).hexdigest()
        if digest != WEIGHTS_SHA256:
            raise DlibFormatError(f"{path}: SHA-256 {digest} is not that of {WEIGHTS_FILE}")
    means, layers = read_layers(data)
    net = DlibResNet(means)
    params = [layer for layer in layers if layer.kind != "max_pool" and layer.kind != "avg_pool"]
    targets = net.parameterised_layers()
    _expect(len(params) == len(targets), f"{path}: found {len(params)} layers, expected {len(targets)}")
    with torch.no_grad():
        for index, (module, layer) in enumerate(zip(targets, params)):
            _load_layer(module, layer, index)
    fold_affines(net)
    return net.eval().requires_grad_(False)


@torch.no_grad()
def fold_affines(net: DlibResNet) -> None:
    """Fold each affine layer into the conv before it (exact up to float rounding): the
    network then skips 29 element-wise passes over its activations, forward and backward."""

    def fold(conv: nn.Conv2d, affine: Affine) -> None:
        gamma = affine.gamma.view(-1)
        conv.weight.mul_(gamma.view(-1, 1, 1, 1))
        conv.bias.copy_(conv.bias * gamma + affine.beta.view(-1))

    fold(net.conv0, net.affine0)
    net.affine0 = nn.Identity()
    for block in net.blocks:
        fold(block.conv1, block.affine1)
        fold(block.conv2, block.affine2)
        block.affine1, block.affine2 = nn.Identity(), nn.Identity()
