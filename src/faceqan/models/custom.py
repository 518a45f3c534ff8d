"""Users' own FR models: ONNX files, insightface IResNet state dicts, TorchScript files,
and any nn.Module; each checked to be a differentiable embedding model before use."""

from __future__ import annotations

import zipfile
from pathlib import Path

import torch
from torch import nn

from ..extras import require
from .iresnet import IRESNET_LAYERS, iresnet
from .onnx_module import load_onnx
from .spec import FaceModel, ModelSpec, arcface_spec

ARCHS = ("onnx", "torchscript", *IRESNET_LAYERS)


class ModelLoadError(ValueError):
    """A model file or module that cannot serve as a differentiable FR model."""


def _onnx_input_spec(path: Path) -> tuple[int, bool]:
    """Input size from the graph, and whether it normalises 0..255 input itself (a Sub / Mul
    on the input first, as insightface and SFace exports do)."""
    onnx = require("onnx", "onnx", "ONNX model files")

    graph = onnx.load(str(path), load_external_data=False).graph
    initialisers = {i.name for i in graph.initializer}
    image = next(i for i in graph.input if i.name not in initialisers)
    dims = [d.dim_value for d in image.type.tensor_type.shape.dim]
    size = dims[2] if len(dims) == 4 and dims[2] > 0 else 112
    first = [n.op_type for n in graph.node if image.name in n.input]
    return size, bool(first) and first[0] in ("Sub", "Mul")


def _guess_arch(path: Path) -> str:
    if path.suffix.lower() == ".onnx":
        return "onnx"
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            if any(name.endswith("constants.pkl") or "/code/" in name for name in archive.namelist()):
                return "torchscript"
    raise ModelLoadError(f"{path}: cannot tell the model type; pass --arch ({', '.join(ARCHS)})")


def _load_state_dict(path: Path, arch: str) -> nn.Module:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelLoadError(f"{path} is not a PyTorch checkpoint that loads safely (weights_only=True): {exc}") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelLoadError(f"{path} does not hold a state dict of tensors")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    features = state["fc.weight"].shape[0] if "fc.weight" in state else 512
    network = iresnet(arch, features)
    result = network.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ModelLoadError(
            f"{path} does not fit IResNet {arch}: missing keys {result.missing_keys[:8]}"
            f"{' ...' if len(result.missing_keys) > 8 else ''}, unexpected keys {result.unexpected_keys[:8]}"
            f"{' ...' if len(result.unexpected_keys) > 8 else ''}"
        )
    return network


def load_model_file(
    path: str | Path,
    arch: str | None = None,
    input_size: int | None = None,
    input_mean: float | None = None,
    input_std: float | None = None,
    bgr: bool = False,
) -> FaceModel:
    """A user's model file as a checked FaceModel, aligned with the ArcFace template.

    Normalisation defaults to insightface's (x - 127.5) / 127.5, or raw 0..255 for an ONNX
    graph that normalises its input itself.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    arch = arch or _guess_arch(path)
    if arch not in ARCHS:
        raise ModelLoadError(f"unknown --arch {arch!r}; choose one of {', '.join(ARCHS)}")
    mean, std = 127.5, 127.5
    if arch == "onnx":
        try:
            size, normalises_itself = _onnx_input_spec(path)
            network = load_onnx(path)
        except Exception as exc:  # onnx and our converter raise many kinds
            raise ModelLoadError(f"{path}: {exc}") from exc
        input_size = input_size or size
        if normalises_itself:
            mean, std = 0.0, 1.0
    elif arch == "torchscript":
        try:
            network = torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:
            raise ModelLoadError(f"{path} is not a TorchScript file: {exc}") from exc
    else:
        network = _load_state_dict(path, arch)
    spec = arcface_spec(
        path.name, f"{path} ({arch})", input_size or 112,
        input_mean=mean if input_mean is None else input_mean, input_std=std if input_std is None else input_std, bgr=bgr,
    )  # fmt: skip
    return from_module(network, spec)


def from_module(network: nn.Module, spec: ModelSpec) -> FaceModel:
    """Wrap any nn.Module as a FaceModel and check that it is a differentiable embedding model."""
    model = FaceModel(network, spec).eval()
    check_model(model)
    return model


def check_model(model: FaceModel) -> int:
    """Run two random faces through the model; return the embedding size or say what is wrong."""
    size = model.spec.input_size
    x = (torch.rand((2, 3, size, size), generator=torch.Generator().manual_seed(0)) * 2 - 1).requires_grad_(True)
    try:
        out = model(x)
    except Exception as exc:
        raise ModelLoadError(f"model {model.spec.name} fails on a (2, 3, {size}, {size}) input: {exc}") from exc
    if isinstance(out, (tuple, list)):
        raise ModelLoadError(f"model {model.spec.name} returns a {type(out).__name__}, not an embedding tensor (N, D)")
    if out.ndim != 2 or out.shape[0] != 2 or out.shape[1] < 2:
        raise ModelLoadError(f"model {model.spec.name} output has shape {tuple(out.shape)}; an embedding model gives (N, D)")
    if not torch.isfinite(out).all():
        raise ModelLoadError(f"model {model.spec.name} gives non-finite embeddings")
    if not out.requires_grad:
        raise ModelLoadError(f"model {model.spec.name} gives no gradient to its input (is it detached or in no_grad?)")
    (grad,) = torch.autograd.grad(out.sum(), x, allow_unused=True)
    if grad is None or not torch.any(grad != 0):
        raise ModelLoadError(f"model {model.spec.name} gives no gradient to its input")
    return out.shape[1]
