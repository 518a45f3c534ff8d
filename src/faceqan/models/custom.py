"""Users' own FR models: ONNX files, insightface IResNet state dicts, TorchScript files,
and any nn.Module; each checked to be a differentiable embedding model before use."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .iresnet import IRESNET_LAYERS, iresnet
from .onnx_module import image_input_problem, load_onnx
from .spec import FaceModel, ModelSpec, arcface_spec

ARCHS = ("onnx", "torchscript", *IRESNET_LAYERS)


class ModelLoadError(ValueError):
    """A model file or module that cannot serve as a differentiable FR model."""


# Below this cosine between our float run of a quantised graph and onnxruntime's own, the
# float equivalent is not the user's model: refuse it.
QUANTISED_AGREEMENT = 0.98


def onnxruntime_agreement(path: Path, model: FaceModel, faces: int = 4) -> float | None:
    """Lowest cosine between ``model``'s embeddings and onnxruntime's for the same file, over
    seeded random inputs; None where onnxruntime is not installed."""
    try:
        import onnxruntime
    except ImportError:
        return None
    import onnx

    from .onnx_module import strip_stale_inputs

    size = model.spec.input_size
    x = torch.rand((faces, 3, size, size), generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        ours = model(x).double()
    a, b = model.scale
    raw = (x * a + b).flip(1) if model.spec.bgr else x * a + b
    network = model.network
    if getattr(network, "channels_last", False):
        raw = raw.permute(0, 2, 3, 1)
    session = onnxruntime.InferenceSession(strip_stale_inputs(onnx.load(str(path))).SerializeToString(), providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0].name
    if getattr(network, "fixed_batch", False):
        theirs = np.concatenate([session.run(None, {feed: raw[i : i + 1].contiguous().numpy()})[0] for i in range(faces)])
    else:
        theirs = session.run(None, {feed: raw.contiguous().numpy()})[0]
    return float(torch.nn.functional.cosine_similarity(ours, torch.from_numpy(theirs).double().reshape(faces, -1)).min())


def _say_how_it_runs(path: Path, model: FaceModel) -> None:
    """One notice for a graph that does not run as written (quantised activations, float16),
    with its measured agreement; a refusal where that agreement is poor."""
    network = model.network
    if getattr(network, "quantised_activations", False):
        what = "quantises its activations (int8): it runs as its float equivalent (weights dequantised, activation quantisation as identity, so that the attack has gradients)"
    elif getattr(network, "reduced_precision", False):
        what = "computes in float16: it runs in float32"
    else:
        return
    agreement = onnxruntime_agreement(path, model)
    if agreement is None:
        measured = "agreement with onnxruntime not measured (onnxruntime is not installed)"
    else:
        measured = f"its embeddings agree with onnxruntime's to cosine {agreement:.4f} (lowest of 4 random inputs)"
        if agreement < QUANTISED_AGREEMENT:
            raise ModelLoadError(
                f"{path} {what.split(':')[0]}, and its float equivalent agrees with onnxruntime's embeddings only to cosine "
                f"{agreement:.4f} (< {QUANTISED_AGREEMENT}): pass the float model the file was made from"
            )
    print(f"faceqan: {path.name} {what}; {measured}", file=sys.stderr)


def _guess_arch(path: Path) -> str:
    if path.suffix.lower() == ".onnx":
        return "onnx"
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            if any(name.endswith("constants.pkl") or "/code/" in name for name in archive.namelist()):
                return "torchscript"
    raise ModelLoadError(f"{path}: cannot tell the model type; pass --arch ({', '.join(ARCHS)})")


# Prefixes that training wrappers put before insightface's names (DataParallel, a model holding the backbone).
WRAPPER_PREFIXES = ("module.", "backbone.", "model.", "net.")


def _without_wrapper_prefixes(state: dict) -> dict:
    """The state dict with a prefix that every key shares (``module.``, ``backbone.``, ...) removed,
    repeatedly (``module.backbone.``); keys outside the prefixed part (a margin head) are dropped."""
    while True:
        for prefix in WRAPPER_PREFIXES:
            inner = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
            if "conv1.weight" in inner or any(k.startswith(WRAPPER_PREFIXES) for k in inner):
                state = inner
                break
        else:
            return state


def _load_state_dict(path: Path, arch: str) -> nn.Module:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelLoadError(f"{path} is not a PyTorch checkpoint that loads safely (weights_only=True): {exc}") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelLoadError(f"{path} does not hold a state dict of tensors")
    state = _without_wrapper_prefixes(state)
    features = state["fc.weight"].shape[0] if "fc.weight" in state else 512
    network = iresnet(arch, features)
    result = network.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        missing = ", ".join(result.missing_keys[:3]) or "none"
        raise ModelLoadError(
            f"{path} does not fit IResNet {arch} with insightface's parameter names: {len(result.missing_keys)} keys missing "
            f"(e.g. {missing}), {len(result.unexpected_keys)} unexpected (e.g. {', '.join(result.unexpected_keys[:3]) or 'none'})"
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
            network = load_onnx(path)
        except Exception as exc:  # onnx and our converter raise many kinds
            raise ModelLoadError(f"{path}: {exc}") from exc
        problem = image_input_problem(network)
        if problem:
            raise ModelLoadError(f"{path}: {problem}")
        input_size = input_size or network.input_size
        if network.normalises_itself:
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
        default_eps=None,  # a model file's eps is the user's to measure: scoring without --eps is refused
    )  # fmt: skip
    model = from_module(network, spec)
    if arch == "onnx":
        _say_how_it_runs(path, model)
    return model


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
