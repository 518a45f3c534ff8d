"""The one-pass student as one ONNX graph: aligned chips (N, 3, S, S) in [-1, 1] -> quality, the
mirror pass for s_f inside, the head (ridge or fine-tuned blocks) and its quantile map as graph
operations; a dynamic batch. Runs in onnxruntime without PyTorch or faceqan."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
from torch import nn

from .graph_tail import onnx_module_of

OPSET = 17


class StudentGraph(nn.Module):
    """``StudentMethod``'s network with the three outputs an ONNX file carries."""

    def __init__(self, method) -> None:
        super().__init__()
        self.net = method.net

    def forward(self, chips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        quality, flip_sim, q_adv, _ = self.net(chips)
        return quality, flip_sim, q_adv


def export_student(method, path: str | Path, opset: int = OPSET) -> Path:
    """Write ``method`` (a StudentMethod) as an ONNX file: input ``chips`` (N, 3, S, S) float32
    in [-1, 1], outputs ``quality``, ``flip_sim``, ``q_adv`` (N,)."""
    converted = onnx_module_of(method.model)
    if converted is not None and converted.fixed_batch:  # its per-face loop would be traced for one batch size only
        raise ValueError(
            f"{method.model.spec.name} was exported for a fixed batch of 1, so its student cannot be exported for any batch: "
            "export the model again with a dynamic batch (torch.onnx.export(..., dynamic_axes={'input': {0: 'batch'}}))"
        )
    graph = StudentGraph(method).eval()
    size = method.model.spec.input_size
    example = torch.zeros(2, 3, size, size)
    path = Path(path)
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer warns where a shape becomes a constant: channel counts and map sizes are
        # fixed by the model; the batch stays dynamic (checked in tests/test_student.py).
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(
            graph, (example,), str(path), dynamo=False, opset_version=opset, input_names=["chips"],
            output_names=["quality", "flip_sim", "q_adv"], dynamic_axes={"chips": {0: "n"}, "quality": {0: "n"}, "flip_sim": {0: "n"}, "q_adv": {0: "n"}},
        )  # fmt: skip
    _add_metadata(path, method)
    return path


def _add_metadata(path: Path, method) -> None:
    """What a runtime without faceqan's models needs to make the chips: the model's input size and
    landmark template (``faceqan.lite`` reads them)."""
    import onnx

    spec = method.model.spec
    model = onnx.load(str(path))
    entry = model.metadata_props.add()
    entry.key, entry.value = "faceqan", json.dumps({"model": spec.name, "input_size": spec.input_size, "template": spec.template.tolist(), "student_sha256": method.sha256})
    onnx.save(model, str(path))
