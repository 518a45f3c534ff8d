"""Face recognition architectures users bring, with seeded random weights (conversion needs
no trained weights): each built at full size for the corpus, and small for the tests.

MobileFaceNet (PReLU or ReLU6, flattened by ``view(size(0), -1)``), a ConvNeXt / EdgeFace-style
net (LayerNorm, GELU), a ViT-tiny face model (MatMul, Softmax, LayerNorm), a GhostFaceNet-style
net (depthwise, squeeze-excite, HardSigmoid / HardSwish) and FaceNet's InceptionResnetV1 layout;
IResNet-50 / -100 come from ``faceqan.models.iresnet`` (insightface's parameter names).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from faceqan.models.iresnet import iresnet


def _conv_bn(cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1, act: Callable | None = None) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(act(cout))
    return nn.Sequential(*layers)


def _prelu(channels: int) -> nn.Module:
    return nn.PReLU(channels)


def _relu6(channels: int) -> nn.Module:
    return nn.ReLU6()


class _Bottleneck(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expansion: int, act: Callable) -> None:
        super().__init__()
        hidden = cin * expansion
        self.body = nn.Sequential(
            _conv_bn(cin, hidden, 1, act=act), _conv_bn(hidden, hidden, 3, stride, groups=hidden, act=act), _conv_bn(hidden, cout, 1)
        )
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.residual else self.body(x)


class MobileFaceNet(nn.Module):
    """insightface's MobileFaceNet layout: 112x112 -> GDC -> Linear -> BatchNorm1d."""

    def __init__(self, act: str = "prelu", width: int = 64, blocks: tuple[int, ...] = (4, 6, 2), embedding: int = 512) -> None:
        super().__init__()
        a = _prelu if act == "prelu" else _relu6
        layers: list[nn.Module] = [_conv_bn(3, width, 3, 2, act=a), _conv_bn(width, width, 3, 1, groups=width, act=a)]
        cin = width
        for stage, repeats in enumerate(blocks):
            cout = width * (2 if stage else 1)
            for i in range(repeats):
                layers.append(_Bottleneck(cin, cout, 2 if i == 0 else 1, 2, a))
                cin = cout
        self.body = nn.Sequential(*layers, _conv_bn(cin, 512, 1, act=a))
        spatial = 112 // 2 ** (1 + len(blocks))
        self.gdc = _conv_bn(512, 512, spatial, groups=512)  # global depthwise conv to 1x1
        self.gdc[0].padding = (0, 0)
        self.linear = nn.Linear(512, embedding)
        self.features = nn.BatchNorm1d(embedding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.gdc(self.body(x))
        x = x.view(x.size(0), -1)  # the export pattern: Shape, Gather, Unsqueeze, Concat, Reshape
        return self.features(self.linear(x))


class _ConvNeXtBlock(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pw1 = nn.Linear(dim, 4 * dim)
        self.pw2 = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.pw2(F.gelu(self.pw1(self.norm(y))))
        return x + y.permute(0, 3, 1, 2)


class ConvNeXtFace(nn.Module):
    """EdgeFace-style ConvNeXt: patchify stem, LayerNorm + GELU blocks, pooled embedding."""

    def __init__(self, dims: tuple[int, ...] = (48, 96, 192, 384), depths: tuple[int, ...] = (2, 2, 6, 2), embedding: int = 512) -> None:
        super().__init__()
        stages: list[nn.Module] = [nn.Conv2d(3, dims[0], 4, 4)]
        for i, (dim, depth) in enumerate(zip(dims, depths)):
            if i:
                stages += [_ChannelsFirstLayerNorm(dims[i - 1]), nn.Conv2d(dims[i - 1], dim, 2, 2)]
            stages += [_ConvNeXtBlock(dim) for _ in range(depth)]
        self.stages = nn.Sequential(*stages)
        self.norm = nn.LayerNorm(dims[-1])
        self.head = nn.Linear(dims[-1], embedding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.stages(x).mean(dim=(2, 3))))


class _ChannelsFirstLayerNorm(nn.LayerNorm):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class _Attention(nn.Module):
    """Attention written out (MatMul, Softmax), as ViT face models export."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        q, k, v = self.qkv(x).reshape(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        weights = torch.softmax(q @ k.transpose(-2, -1) * (d // self.heads) ** -0.5, dim=-1)
        return self.proj((weights @ v).transpose(1, 2).reshape(n, t, d))


class _TransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = _Attention(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, dim * 4), nn.GELU(), nn.Linear(dim * 4, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViTFace(nn.Module):
    """A ViT-tiny face model (insightface's vit_t layout, simplified): 9x9 patches of a 112 face... here 8x8 -> 196 tokens."""

    def __init__(self, dim: int = 192, depth: int = 12, heads: int = 3, patch: int = 8, embedding: int = 512) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, dim, patch, patch)
        self.position = nn.Parameter(torch.randn(1, (112 // patch) ** 2, dim) * 0.02)
        self.blocks = nn.Sequential(*[_TransformerBlock(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, embedding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch(x).flatten(2).transpose(1, 2) + self.position
        return self.head(self.norm(self.blocks(tokens)).mean(dim=1))


class _SqueezeExcite(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, max(channels // 4, 4), 1)
        self.expand = nn.Conv2d(max(channels // 4, 4), channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * F.hardsigmoid(self.expand(F.relu(self.reduce(x.mean(dim=(2, 3), keepdim=True)))))


class _GhostModule(nn.Module):
    """Half the channels from a 1x1 conv, half from a cheap depthwise conv of those."""

    def __init__(self, cin: int, cout: int, act: bool) -> None:
        super().__init__()
        half = cout // 2
        self.primary = _conv_bn(cin, half, 1, act=(lambda c: nn.Hardswish()) if act else None)
        self.cheap = _conv_bn(half, cout - half, 3, groups=half, act=(lambda c: nn.Hardswish()) if act else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.primary(x)
        return torch.cat([y, self.cheap(y)], dim=1)


class _GhostBottleneck(nn.Module):
    def __init__(self, cin: int, hidden: int, cout: int, stride: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [_GhostModule(cin, hidden, True)]
        if stride > 1:
            layers.append(_conv_bn(hidden, hidden, 3, stride, groups=hidden))
        layers += [_SqueezeExcite(hidden), _GhostModule(hidden, cout, False)]
        self.body = nn.Sequential(*layers)
        self.shortcut = nn.Identity() if stride == 1 and cin == cout else _conv_bn(cin, cout, 1, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


class GhostFaceNet(nn.Module):
    """GhostFaceNet-style: ghost bottlenecks with squeeze-excite, GDC head."""

    def __init__(self, widths: tuple[int, ...] = (16, 24, 40, 80, 160), embedding: int = 512) -> None:
        super().__init__()
        layers: list[nn.Module] = [_conv_bn(3, widths[0], 3, 2, act=lambda c: nn.Hardswish())]
        for cin, cout in zip(widths, widths[1:]):
            layers += [_GhostBottleneck(cin, cin * 3, cout, 2), _GhostBottleneck(cout, cout * 3, cout, 1)]
        self.body = nn.Sequential(*layers, _conv_bn(widths[-1], 512, 1, act=_prelu))
        spatial = 112
        for _ in widths:  # the stem and each stage halve it, rounding up
            spatial = (spatial + 1) // 2
        self.gdc = nn.Conv2d(512, 512, spatial, groups=512, bias=False)
        self.linear = nn.Conv2d(512, embedding, 1, bias=False)
        self.features = nn.BatchNorm1d(embedding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(self.linear(self.gdc(self.body(x))).flatten(1))


class _ScaledResidual(nn.Module):
    """An Inception-ResNet block: branches concatenated, projected, scaled, added, ReLU."""

    def __init__(self, channels: int, branches: list[nn.Module], width: int, scale: float, relu: bool = True) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)
        self.project = nn.Conv2d(width, channels, 1)
        self.scale, self.relu = scale, relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x + self.scale * self.project(torch.cat([b(x) for b in self.branches], 1))
        return F.relu(out) if self.relu else out


def _relu_conv(cin: int, cout: int, kernel, stride: int = 1, padding=0) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding, bias=False), nn.BatchNorm2d(cout, eps=1e-3), nn.ReLU())


class InceptionResnetV1(nn.Module):
    """FaceNet's InceptionResnetV1 layout (facenet-pytorch): 160x160 -> 512, L2-normalised."""

    def __init__(self, repeats: tuple[int, int, int] = (5, 10, 5), embedding: int = 512) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            _relu_conv(3, 32, 3, 2), _relu_conv(32, 32, 3), _relu_conv(32, 64, 3, padding=1), nn.MaxPool2d(3, 2),
            _relu_conv(64, 80, 1), _relu_conv(80, 192, 3), _relu_conv(192, 256, 3, 2),
        )  # fmt: skip
        block35 = [
            _ScaledResidual(256, [_relu_conv(256, 32, 1), nn.Sequential(_relu_conv(256, 32, 1), _relu_conv(32, 32, 3, padding=1)),
                                  nn.Sequential(_relu_conv(256, 32, 1), _relu_conv(32, 32, 3, padding=1), _relu_conv(32, 32, 3, padding=1))], 96, 0.17)
            for _ in range(repeats[0])
        ]  # fmt: skip
        mixed6a = _Mixed([_relu_conv(256, 384, 3, 2), nn.Sequential(_relu_conv(256, 192, 1), _relu_conv(192, 192, 3, padding=1), _relu_conv(192, 256, 3, 2)), nn.MaxPool2d(3, 2)])
        block17 = [
            _ScaledResidual(896, [_relu_conv(896, 128, 1), nn.Sequential(_relu_conv(896, 128, 1), _relu_conv(128, 128, (1, 7), padding=(0, 3)),
                                                                          _relu_conv(128, 128, (7, 1), padding=(3, 0)))], 256, 0.10)
            for _ in range(repeats[1])
        ]  # fmt: skip
        mixed7a = _Mixed([
            nn.Sequential(_relu_conv(896, 256, 1), _relu_conv(256, 384, 3, 2)), nn.Sequential(_relu_conv(896, 256, 1), _relu_conv(256, 256, 3, 2)),
            nn.Sequential(_relu_conv(896, 256, 1), _relu_conv(256, 256, 3, padding=1), _relu_conv(256, 256, 3, 2)), nn.MaxPool2d(3, 2),
        ])  # fmt: skip
        block8 = [
            _ScaledResidual(1792, [_relu_conv(1792, 192, 1), nn.Sequential(_relu_conv(1792, 192, 1), _relu_conv(192, 192, (1, 3), padding=(0, 1)),
                                                                            _relu_conv(192, 192, (3, 1), padding=(1, 0)))], 384, 0.20, relu=i < repeats[2] - 1)
            for i in range(repeats[2])
        ]  # fmt: skip
        self.body = nn.Sequential(*block35, mixed6a, *block17, mixed7a, *block8)
        self.dropout = nn.Dropout(0.6)
        self.last_linear = nn.Linear(1792, embedding, bias=False)
        self.last_bn = nn.BatchNorm1d(embedding, eps=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(self.body(self.stem(x)), 1)
        x = self.last_bn(self.last_linear(self.dropout(x.view(x.shape[0], -1))))
        return F.normalize(x, p=2, dim=1)


class _Mixed(nn.Module):
    def __init__(self, branches: list[nn.Module]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([b(x) for b in self.branches], 1)


# name -> (full-size builder, small builder for tests, input size)
ARCHITECTURES: dict[str, tuple[Callable[[], nn.Module], Callable[[], nn.Module], int]] = {
    "iresnet50": (lambda: iresnet("r50"), lambda: iresnet("r18", 64), 112),
    "iresnet100": (lambda: iresnet("r100"), lambda: iresnet("r18", 64), 112),
    "mobilefacenet-prelu": (lambda: MobileFaceNet("prelu"), lambda: MobileFaceNet("prelu", 16, (1, 1, 1), 64), 112),
    "mobilefacenet-relu6": (lambda: MobileFaceNet("relu6"), lambda: MobileFaceNet("relu6", 16, (1, 1, 1), 64), 112),
    "convnext-edgeface": (ConvNeXtFace, lambda: ConvNeXtFace((16, 32), (1, 1), 64), 112),
    "vit-tiny": (ViTFace, lambda: ViTFace(32, 2, 2, 16, 64), 112),
    "ghostfacenet": (GhostFaceNet, lambda: GhostFaceNet((8, 16, 24), 64), 112),
    "inception-resnet-v1": (InceptionResnetV1, lambda: InceptionResnetV1((1, 1, 1), 64), 160),
}


def build(name: str, small: bool = False, seed: int = 0) -> nn.Module:
    """The architecture ``name`` with seeded random weights and batch-norm statistics, in eval mode."""
    full, tiny, _ = ARCHITECTURES[name]
    torch.manual_seed(seed)
    network = (tiny if small else full)()
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for module in network.modules():  # random running statistics, so batch norms do not vanish when folded
            if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
    return network.eval()


def input_size(name: str) -> int:
    return ARCHITECTURES[name][2]
