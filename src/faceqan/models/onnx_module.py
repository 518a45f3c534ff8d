"""Run an ONNX face recognition graph as a differentiable torch module.

Each supported ONNX operator maps to one torch function. Nodes whose inputs are all
constants (weights, DequantizeLinear of int8 weights, Reshape of them, Constant) are
evaluated once at load time, so a quantised model becomes a float one; the remaining
nodes run in order in ``forward``. Initialiser names that a graph also lists as inputs
and graph inputs that no node reads (stale exports list them) are not treated as inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..extras import require


class OnnxConversionError(ValueError):
    """The file is not an ONNX model we can turn into a torch module."""


def _attr(node, name: str, default=None):
    import onnx

    for attribute in node.attribute:
        if attribute.name == name:
            return onnx.helper.get_attribute_value(attribute)
    return default


def _conv(node, x, w, b=None):
    pads = _attr(node, "pads", [0, 0, 0, 0])
    if _attr(node, "auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise OnnxConversionError(f"Conv {node.name}: auto_pad is not supported")
    begin, end = pads[:2], pads[2:]
    if begin != end:
        x = F.pad(x, (begin[1], end[1], begin[0], end[0]))
        padding = 0
    else:
        padding = tuple(begin)
    return F.conv2d(x, w, b, _attr(node, "strides", [1, 1]), padding, _attr(node, "dilations", [1, 1]), _attr(node, "group", 1))


class _FrozenSlopePRelu(torch.autograd.Function):
    """Per-channel PReLU whose slope gets no gradient. Its input gradient, g where x > 0 and
    slope * g elsewhere, built from ReLU's vectorised backward: torch's PReLU backward (which
    also reduces the slope's gradient) took SFace's attack 2.30 s per image, this 2.17 (medians
    of 3 alternating runs, 2-core CPU)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, slope)
        return F.prelu(x, slope)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, slope = ctx.saved_tensors
        positive_part = torch.ops.aten.threshold_backward(grad, x, 0)
        shape = [1, -1] + [1] * (x.dim() - 2)
        return (grad - positive_part).mul_(slope.view(shape)).add_(positive_part), None


def _prelu(x, slope):
    """ONNX PRelu. A per-channel slope that gets no gradient (FaceQAN's attack) runs as
    `_FrozenSlopePRelu`; otherwise a per-channel or single slope runs as F.prelu, whose fused
    kernel and backward are about twice as fast on the CPU as where/mul/ge."""
    shape = [1] * (x.dim() - slope.dim()) + list(slope.shape)
    per_channel = x.dim() >= 2 and shape[1] == x.shape[1] and all(d == 1 for i, d in enumerate(shape) if i != 1)
    if per_channel and x.requires_grad and not slope.requires_grad:
        return _FrozenSlopePRelu.apply(x, slope.reshape(-1))
    if slope.numel() == 1 or per_channel:
        return F.prelu(x, slope.reshape(-1))
    return torch.where(x >= 0, x, x * slope)


def _gemm(node, a, b, c=None):
    a = a.t() if _attr(node, "transA", 0) else a
    b = b.t() if _attr(node, "transB", 0) else b
    out = _attr(node, "alpha", 1.0) * (a @ b)
    return out if c is None else out + _attr(node, "beta", 1.0) * c


def _reshape(node, x, shape):
    dims = [int(d) for d in shape.tolist()]
    if not _attr(node, "allowzero", 0):
        dims = [x.shape[i] if d == 0 else d for i, d in enumerate(dims)]
    return x.reshape(dims)


def _dequantize(node, x, scale, zero_point=None):
    axis = _attr(node, "axis", 1)
    block = _attr(node, "block_size", 0)
    x = x.to(torch.float32)
    zero = torch.zeros_like(scale) if zero_point is None else zero_point.to(torch.float32)
    if block:
        scale = scale.repeat_interleave(block, dim=axis).narrow(axis, 0, x.shape[axis])
        zero = zero.repeat_interleave(block, dim=axis).narrow(axis, 0, x.shape[axis])
    elif scale.ndim == 1 and scale.numel() > 1:
        shape = [1] * x.ndim
        shape[axis] = -1
        scale, zero = scale.view(shape), zero.view(shape)
    return (x - zero) * scale


def _pool(kind: str):
    def run(node, x):
        kernel = _attr(node, "kernel_shape")
        strides = _attr(node, "strides", [1, 1])
        pads = _attr(node, "pads", [0, 0, 0, 0])
        if pads[:2] != pads[2:]:
            raise OnnxConversionError(f"{kind} {node.name}: asymmetric padding is not supported")
        ceil = bool(_attr(node, "ceil_mode", 0))
        if kind == "MaxPool":
            return F.max_pool2d(x, kernel, strides, pads[:2], ceil_mode=ceil)
        return F.avg_pool2d(x, kernel, strides, pads[:2], ceil_mode=ceil, count_include_pad=bool(_attr(node, "count_include_pad", 0)))

    return run


OPS: dict[str, Callable] = {
    "Conv": _conv,
    "Gemm": _gemm,
    "Reshape": _reshape,
    "DequantizeLinear": _dequantize,
    "MaxPool": _pool("MaxPool"),
    "AveragePool": _pool("AveragePool"),
    "BatchNormalization": lambda n, x, g, b, m, v: F.batch_norm(x, m, v, g, b, False, 0.0, _attr(n, "epsilon", 1e-5)),
    "PRelu": lambda n, x, slope: _prelu(x, slope),
    "Relu": lambda n, x: F.relu(x),
    "LeakyRelu": lambda n, x: F.leaky_relu(x, _attr(n, "alpha", 0.01)),
    "Sigmoid": lambda n, x: torch.sigmoid(x),
    "Tanh": lambda n, x: torch.tanh(x),
    "Add": lambda n, a, b: a + b,
    "Sub": lambda n, a, b: a - b,
    "Mul": lambda n, a, b: a * b,
    "Div": lambda n, a, b: a / b,
    "MatMul": lambda n, a, b: a @ b,
    "Flatten": lambda n, x: x.flatten(_attr(n, "axis", 1)) if _attr(n, "axis", 1) > 0 else x.reshape(1, -1),
    "Dropout": lambda n, x, *rest: x,
    "Identity": lambda n, x: x,
    "GlobalAveragePool": lambda n, x: x.mean(dim=(2, 3), keepdim=True),
    "Transpose": lambda n, x: x.permute(*_attr(n, "perm", list(range(x.ndim))[::-1])),
    "Concat": lambda n, *xs: torch.cat(xs, dim=_attr(n, "axis")),
    "Cast": lambda n, x: x.to(torch.float32) if _attr(n, "to") == 1 else x.to(torch.int64),
    "Unsqueeze": lambda n, x, axes=None: x.reshape(_unsqueezed_shape(x, axes if axes is not None else _attr(n, "axes"))),
    "Constant": lambda n: _constant(n),
}


def _unsqueezed_shape(x: torch.Tensor, axes) -> list[int]:
    shape = list(x.shape)
    for axis in sorted(int(a) for a in (axes.tolist() if isinstance(axes, torch.Tensor) else axes)):
        shape.insert(axis if axis >= 0 else len(shape) + axis + 1, 1)
    return shape


def _constant(node) -> torch.Tensor:
    from onnx import numpy_helper

    value = _attr(node, "value")
    if value is None:
        raise OnnxConversionError(f"Constant {node.name}: only tensor values are supported")
    return torch.from_numpy(numpy_helper.to_array(value).copy())


def _tensor(array: np.ndarray) -> torch.Tensor:
    array = np.array(array)  # writable copy
    if array.dtype == np.float64:
        array = array.astype(np.float32)
    return torch.from_numpy(array)


def _wide(value: torch.Tensor) -> torch.Tensor:
    """float32 as float64 (constant folding), anything else as it is."""
    return value.double() if value.dtype == torch.float32 else value


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
        scale = gamma / np.sqrt(var + _attr(node, "epsilon", 1e-5))
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
    if node.op_type != "Gemm" or _attr(node, "transA", 0) or _attr(node, "alpha", 1.0) != 1.0 or _attr(node, "beta", 1.0) != 1.0:
        return None
    if node.input[1] not in constants or (len(node.input) > 2 and node.input[2] and node.input[2] not in constants):
        return None
    weight = constants[node.input[1]].float()
    weight = weight if _attr(node, "transB", 0) else weight.t()
    has_bias = len(node.input) > 2 and bool(node.input[2])
    if has_bias and constants[node.input[2]].numel() != weight.shape[0]:
        return None  # a broadcast bias of another shape: leave it to the generic Gemm
    linear = nn.Linear(weight.shape[1], weight.shape[0], bias=has_bias)
    with torch.no_grad():
        linear.weight.copy_(weight)
        if has_bias:
            linear.bias.copy_(constants[node.input[2]].float().reshape(-1))
    return linear


class OnnxModule(nn.Module):
    """A torch module computing an ONNX graph (single image input, first output)."""

    def __init__(self, model) -> None:
        super().__init__()
        from onnx import numpy_helper

        graph = model.graph
        constants = {init.name: _tensor(numpy_helper.to_array(init)) for init in graph.initializer}
        consumed = {name for node in graph.node for name in node.input}
        inputs = [i.name for i in graph.input if i.name not in constants and i.name in consumed]
        if len(inputs) != 1:
            raise OnnxConversionError(f"expected one image input, the graph has {len(inputs)}: {inputs}")
        self.input_name = inputs[0]
        self.output_name = graph.output[0].name
        unsupported = sorted({node.op_type for node in graph.node if node.op_type not in OPS})
        if unsupported:
            raise OnnxConversionError(f"unsupported ONNX operators: {', '.join(unsupported)}")

        self.nodes = []
        for node in graph.node:
            args = [name for name in node.input]
            if all(name == "" or name in constants for name in args):
                # Constant nodes run in float64, each output rounded once to float32: the same weights
                # (and SHA-256) on every CPU, whatever its float32 kernels round.
                with torch.no_grad():
                    result = OPS[node.op_type](node, *[_wide(constants[name]) for name in args if name])
                constants[node.output[0]] = result.float() if result.dtype == torch.float64 else result
            else:
                self.nodes.append(node)
        self.nodes = _fold_batch_norms(self.nodes, constants, self.output_name)
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
        # Called with every node's output when set (faceqan.student reads intermediate features).
        self.tap: Callable[[torch.Tensor], None] | None = None
        for name, buffer_name in self.constant_names.items():
            value = constants[name]
            self.register_buffer(buffer_name, value.float() if value.is_floating_point() else value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values: dict[str, torch.Tensor] = {self.input_name: x}
        for name, buffer_name in self.constant_names.items():
            values[name] = getattr(self, buffer_name)
        for index, node in enumerate(self.nodes):
            key = str(index)
            if key in self.linears:
                values[node.output[0]] = self.linears[key](values[node.input[0]])
            else:
                values[node.output[0]] = OPS[node.op_type](node, *[values[name] for name in node.input if name])
            if self.tap is not None:
                self.tap(values[node.output[0]])
        return values[self.output_name]


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
