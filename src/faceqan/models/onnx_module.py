"""Run an ONNX face recognition graph as a differentiable torch module.

Each ONNX operator is one torch function (``onnx_ops``). Nodes whose inputs are all constants
(weights, DequantizeLinear of int8 weights, Reshape of them, Constant) are evaluated once at
load time, so weight-quantised models become float ones exactly; Conv + BatchNormalization
pairs are folded, and constant-weight Gemm (or MatMul + Add) nodes become ``nn.Linear``
modules (SER-FIQ hooks them). The remaining nodes run in order in ``forward``. Graphs with
NHWC input get the image transposed; graphs exported for a fixed batch of 1 run one face at
a time (their Reshape constants hold the batch size).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..extras import require
from .onnx_ops import (
    CONSTANT_OPS,
    MISSING_OPERATOR_ADVICE,
    OPS,
    QUANTISED_ACTIVATIONS,
    OnnxConversionError,
    as_float32,
    attr,
)

__all__ = ["OnnxConversionError", "OnnxModule", "image_input_problem", "load_onnx", "run_nodes", "strip_stale_inputs"]


def _wide(value: torch.Tensor) -> torch.Tensor:
    """float32 as float64 (constant folding), anything else as it is."""
    return value.double() if value.dtype == torch.float32 else value


def _outputs(result) -> tuple:
    return result if isinstance(result, tuple) else (result,)


def _fold_batch_norms(nodes: list, constants: dict[str, torch.Tensor], output_name: str) -> list:
    """Fold each BatchNormalization into the Conv feeding only it (exact up to rounding):
    saves an element-wise pass over the activations, forward and backward."""
    import onnx

    uses: dict[str, int] = {output_name: 1}
    for node in nodes:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    producer = {node.output[0]: node for node in nodes}
    folded: dict[int, object] = {}  # id of a conv node -> its replacement
    dropped: set[int] = set()
    for node in nodes:
        if node.op_type != "BatchNormalization" or not all(n in constants for n in node.input[1:5]):
            continue
        conv = producer.get(node.input[0])
        if conv is None or conv.op_type != "Conv" or uses[node.input[0]] != 1 or conv.input[1] not in constants:
            continue
        if len(conv.input) > 2 and conv.input[2] and conv.input[2] not in constants:
            continue
        # In float64 NumPy, rounded once: torch's vectorised sqrt is not correctly rounded (in
        # float32 or float64) and differs between CPUs, which changed the weights' fingerprint (and so
        # refused resumes, caches and scales) from one machine to the next.
        gamma, beta, mean, var = (constants[n].double().numpy() for n in node.input[1:5])
        scale = gamma / np.sqrt(var + attr(node, "epsilon", 1e-5))
        weight = constants[conv.input[1]].double().numpy()
        bias = constants[conv.input[2]].double().numpy() if len(conv.input) > 2 and conv.input[2] else np.zeros(weight.shape[0])
        folded_weight = weight * scale.reshape(-1, *([1] * (weight.ndim - 1)))
        constants[conv.output[0] + "/folded_w"] = torch.from_numpy(folded_weight.astype(np.float32))
        constants[conv.output[0] + "/folded_b"] = torch.from_numpy(((bias - mean) * scale + beta).astype(np.float32))
        replacement = onnx.NodeProto()
        replacement.CopyFrom(conv)
        del replacement.input[:]
        replacement.input.extend([conv.input[0], conv.output[0] + "/folded_w", conv.output[0] + "/folded_b"])
        replacement.output[0] = node.output[0]
        folded[id(conv)] = replacement
        dropped.add(id(node))
    return [folded.get(id(n), n) for n in nodes if id(n) not in dropped]


def _gemm_as_linear(node, constants: dict[str, torch.Tensor]) -> nn.Linear | None:
    """An nn.Linear for a Gemm x @ B(^T) + C with constant B and C, alpha = beta = 1."""
    if node.op_type != "Gemm" or attr(node, "transA", 0) or attr(node, "alpha", 1.0) != 1.0 or attr(node, "beta", 1.0) != 1.0:
        return None
    if node.input[1] not in constants or (len(node.input) > 2 and node.input[2] and node.input[2] not in constants):
        return None
    weight = constants[node.input[1]].float()
    weight = weight if attr(node, "transB", 0) else weight.t()
    has_bias = len(node.input) > 2 and bool(node.input[2])
    if has_bias and constants[node.input[2]].numel() != weight.shape[0]:
        return None  # a broadcast bias of another shape: leave it to the generic Gemm
    linear = nn.Linear(weight.shape[1], weight.shape[0], bias=has_bias)
    with torch.no_grad():
        linear.weight.copy_(weight)
        if has_bias:
            linear.bias.copy_(constants[node.input[2]].float().reshape(-1))
    return linear


def _fuse_matmul_add(nodes: list, constants: dict[str, torch.Tensor], output_name: str) -> list:
    """MatMul by a constant (K, N) matrix followed only by Add of a constant (N,) bias, as one
    Gemm node (TensorFlow and PaddlePaddle exports write their dense layers so)."""
    import onnx

    uses: dict[str, int] = {output_name: 1}
    for node in nodes:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    producer = {node.output[0]: node for node in nodes}
    fused: dict[int, object] = {}
    dropped: set[int] = set()
    for node in nodes:
        if node.op_type != "Add":
            continue
        for product, bias in (node.input[:2], node.input[1::-1]):
            matmul = producer.get(product)
            if matmul is None or matmul.op_type != "MatMul" or uses.get(product) != 1 or bias not in constants:
                continue
            weight = constants.get(matmul.input[1])
            if weight is None or weight.ndim != 2 or constants[bias].numel() != weight.shape[1]:
                continue
            gemm = onnx.helper.make_node("Gemm", [matmul.input[0], matmul.input[1], bias], [node.output[0]], name=matmul.name)
            fused[id(node)] = gemm
            dropped.add(id(matmul))
            break
    return [fused.get(id(n), n) for n in nodes if id(n) not in dropped]


class OnnxModule(nn.Module):
    """A torch module computing an ONNX graph (single image input, first output)."""

    def __init__(self, model) -> None:
        super().__init__()
        from onnx import numpy_helper

        graph = model.graph
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
        constants = {init.name: as_float32(numpy_helper.to_array(init)) for init in graph.initializer}
        consumed = {name for node in graph.node for name in node.input}
        inputs = [i for i in graph.input if i.name not in constants and i.name in consumed]
        if len(inputs) != 1:
            raise OnnxConversionError(f"expected one image input, the graph has {len(inputs)}: {[i.name for i in inputs]}")
        self.input_name = inputs[0].name
        self.input_dims, self.channels_last, self.input_size, self.fixed_batch = _image_input(inputs[0])
        self.output_name = graph.output[0].name
        # insightface and SFace exports normalise 0..255 input themselves: a Sub / Mul on the input first
        first = [node.op_type for node in graph.node if self.input_name in node.input]
        self.normalises_itself = bool(first) and first[0] in ("Sub", "Mul")
        missing = [node for node in graph.node if node.op_type not in OPS]
        if missing:
            first = {}
            for node in missing:
                first.setdefault(node.op_type, node)
            named = "; ".join(f"{op} (node {node.name or node.output[0]!r})" for op, node in first.items())
            raise OnnxConversionError(f"unsupported ONNX operators at opset {self.opset}: {named}. Try: {MISSING_OPERATOR_ADVICE}")

        runtime = []
        for node in graph.node:
            if all(name == "" or name in constants for name in node.input):
                # Constant nodes run in float64, each output rounded once to float32: the same weights
                # (and SHA-256) on every CPU, whatever its float32 kernels round.
                operator = CONSTANT_OPS.get(node.op_type, OPS[node.op_type])
                with torch.no_grad():
                    results = _outputs(operator(node, self.opset, *[_wide(constants[n]) if n else None for n in node.input]))
                for name, value in zip(node.output, results):
                    constants[name] = value.float() if value.dtype == torch.float64 else value
            else:
                runtime.append(node)
        self.quantised_activations = any(node.op_type in QUANTISED_ACTIVATIONS for node in runtime)
        self.reduced_precision = any(init.data_type in (10, 16) for init in graph.initializer) or any(
            node.op_type == "Cast" and attr(node, "to") in (10, 16) for node in graph.node
        )
        self.nodes = _fold_batch_norms(runtime, constants, self.output_name)
        self.nodes = _fuse_matmul_add(self.nodes, constants, self.output_name)
        # Fully connected layers become nn.Linear modules, so that tools which hook a model's
        # linear layers (SER-FIQ's dropout) work on converted graphs too.
        self.linears = nn.ModuleDict()
        for index, node in enumerate(self.nodes):
            linear = _gemm_as_linear(node, constants)
            if linear is not None:
                self.linears[str(index)] = linear
        # Keep only the constants the runtime nodes read, as buffers so .to(device) moves them.
        used = {name for i, node in enumerate(self.nodes) if str(i) not in self.linears for name in node.input if name in constants}
        self.constant_names = {name: f"c{i}" for i, name in enumerate(sorted(used))}
        # Called with every node's first output when set (faceqan.student reads intermediate features).
        self.tap: Callable[[torch.Tensor], None] | None = None
        for name, buffer_name in self.constant_names.items():
            value = constants[name]
            self.register_buffer(buffer_name, value.float() if value.is_floating_point() else value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.permute(0, 2, 3, 1)
        if not self.fixed_batch or x.shape[0] == 1:
            return self._run(x, self.tap)
        # A graph exported for batch 1 holds that size in its Reshape constants: one face at a time.
        if self.tap is None:
            return torch.cat([self._run(x[i : i + 1], None) for i in range(x.shape[0])])
        outputs, per_face = [], []
        for i in range(x.shape[0]):
            computed: list[torch.Tensor] = []
            outputs.append(self._run(x[i : i + 1], computed.append))
            per_face.append(computed)
        for step in zip(*per_face):  # the tap sees each node's output for the whole batch, as batched graphs give it
            first = step[0]
            self.tap(torch.cat(step) if first.ndim and first.shape[0] == 1 else first)
        return torch.cat(outputs)

    def _run(self, x: torch.Tensor, tap: Callable[[torch.Tensor], None] | None) -> torch.Tensor:
        values: dict[str, torch.Tensor | None] = {self.input_name: x, "": None}
        for name, buffer_name in self.constant_names.items():
            values[name] = getattr(self, buffer_name)
        return run_nodes(self.nodes, self.opset, values, self.linears, tap)[self.output_name]


def run_nodes(nodes: list, opset: int, values: dict, modules: nn.ModuleDict, tap: Callable[[torch.Tensor], None] | None = None) -> dict:
    """Run ``nodes`` in order over ``values`` (tensor name -> tensor, filled in as they run); the
    node at position i runs as ``modules[str(i)]`` on its first input where there is one. ``tap``
    sees each node's first output."""
    for index, node in enumerate(nodes):
        key = str(index)
        if key in modules:
            results = (modules[key](values[node.input[0]]),)
        else:
            results = _outputs(OPS[node.op_type](node, opset, *[values[name] for name in node.input]))
        for name, value in zip(node.output, results):
            values[name] = value
        if tap is not None:
            tap(results[0])
    return values


def _image_input(value_info) -> tuple[list[int | None], bool, int | None, bool]:
    """(dims, channels last, image size or None, fixed batch of 1) of the graph's input."""
    dims = [(d.dim_value if d.HasField("dim_value") else None) for d in value_info.type.tensor_type.shape.dim]
    if len(dims) != 4:
        return dims, False, None, bool(dims) and dims[0] == 1
    channels_last = dims[3] == 3 and dims[1] != 3
    return dims, channels_last, (dims[1] if channels_last else dims[2]) or None, dims[0] == 1


def image_input_problem(module: OnnxModule) -> str | None:
    """Why the graph's input is not a batch of colour images, or None."""
    dims = module.input_dims
    if not dims:
        return None  # no shape recorded: NCHW of any size is assumed
    if len(dims) != 4 or not (module.channels_last or dims[1] in (3, None)):
        return f"input {module.input_name!r} has shape {dims}: not a batch of colour images (N, 3, H, W) or (N, H, W, 3)"
    return None


def load_onnx(path: str | Path) -> OnnxModule:
    """Load an ONNX file into an OnnxModule (eval mode, no parameter gradients)."""
    onnx = require("onnx", "onnx", "SFace and ONNX model files")

    try:
        model = onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError, OSError... for non-ONNX files
        raise OnnxConversionError(f"{path} is not an ONNX model: {exc}") from exc
    if not model.graph.node:
        raise OnnxConversionError(f"{path} is not an ONNX model (no graph nodes)")
    return OnnxModule(model).eval()


def strip_stale_inputs(model):
    """A copy of an ONNX model without the graph inputs that are initialisers or that no
    node reads (onnxruntime refuses such stale inputs)."""
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    names = {init.name for init in copy.graph.initializer}
    consumed = {name for node in copy.graph.node for name in node.input}
    kept = [i for i in copy.graph.input if i.name not in names and i.name in consumed]
    del copy.graph.input[:]
    copy.graph.input.extend(kept)
    return copy
