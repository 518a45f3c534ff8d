"""ONNX operators as torch functions: ``OPS[op_type](node, opset, *inputs)`` -> tensor or tuple.

Inputs the node leaves out ("" in ONNX) arrive as None. Everything runs in float32 so that
gradients flow: float16 casts stay float32, and quantised activations run as their float
equivalent (QuantizeLinear and DynamicQuantizeLinear pass values through, ConvInteger and
MatMulInteger subtract zero points in float). Int8 weights are dequantised exactly, once, when
``OnnxModule`` folds the graph's constant nodes (``CONSTANT_OPS`` does the real quantisation there).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F


class OnnxConversionError(ValueError):
    """The file is not an ONNX model we can turn into a torch module."""


def attr(node, name: str, default=None):
    import onnx

    for attribute in node.attribute:
        if attribute.name == name:
            value = onnx.helper.get_attribute_value(attribute)
            return value.decode() if isinstance(value, bytes) else value
    return default


def _ints(value) -> list[int]:
    return [int(v) for v in (value.tolist() if isinstance(value, torch.Tensor) else value)]


def _scalar(value) -> float | None:
    return None if value is None else float(value.reshape(-1)[0]) if isinstance(value, torch.Tensor) else float(value)


def _axes(node, opset: int, given, since: int) -> list[int] | None:
    """Axes given as an input from opset ``since`` on, as an attribute before."""
    value = given if opset >= since else attr(node, "axes")
    return None if value is None else _ints(value)


# ---- padding shared by Conv and the pools ----------------------------------------------


def _padding(node, x: torch.Tensor, kernel: list[int], strides: list[int], dilations: list[int]) -> list[int]:
    """ONNX pads [h_begin, w_begin, h_end, w_end], from ``pads`` or computed for ``auto_pad``."""
    mode = attr(node, "auto_pad", "NOTSET")
    if mode in ("NOTSET", ""):
        return list(attr(node, "pads", [0] * (2 * len(kernel))))
    if mode == "VALID":
        return [0] * (2 * len(kernel))
    begins, ends = [], []
    for size, k, s, d in zip(x.shape[2:], kernel, strides, dilations):
        total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
        small = total // 2
        begins.append(small if mode == "SAME_UPPER" else total - small)
        ends.append(total - begins[-1])
    return begins + ends


def _pad_explicitly(x: torch.Tensor, pads: list[int], value: float = 0.0, mode: str = "constant") -> torch.Tensor:
    """ONNX pads (all begins, then all ends, first axis first) as F.pad's (last axis first)."""
    half = len(pads) // 2
    torch_pads: list[int] = []
    for axis in reversed(range(half)):
        torch_pads += [pads[axis], pads[axis + half]]
    return F.pad(x, torch_pads, mode=mode, value=value) if mode == "constant" else F.pad(x, torch_pads, mode=mode)


def _conv(node, opset, x, w, b=None):
    kernel, strides = list(w.shape[2:]), attr(node, "strides", [1] * (w.ndim - 2))
    dilations = attr(node, "dilations", [1] * (w.ndim - 2))
    pads = _padding(node, x, kernel, strides, dilations)
    half = len(pads) // 2
    padding: int | tuple = tuple(pads[:half])
    if pads[:half] != pads[half:]:
        x, padding = _pad_explicitly(x, pads), 0
    conv = F.conv1d if w.ndim == 3 else F.conv2d
    return conv(x, w, b, strides, padding, dilations, attr(node, "group", 1))


def _conv_integer(node, opset, x, w, x_zero=None, w_zero=None):
    x = x.float() - (0.0 if x_zero is None else x_zero.float())
    w = w.float()
    if w_zero is not None:
        shape = [-1] + [1] * (w.ndim - 1) if w_zero.numel() > 1 else []
        w = w - w_zero.float().reshape(shape)
    return _conv(node, opset, x, w)


def _matmul_integer(node, opset, a, b, a_zero=None, b_zero=None):
    a = a.float() - (0.0 if a_zero is None else a_zero.float())
    b = b.float() - (0.0 if b_zero is None else b_zero.float())
    return a @ b


def _pool(kind: str):
    def run(node, opset, x):
        kernel = attr(node, "kernel_shape")
        strides = attr(node, "strides", [1] * len(kernel))
        pads = _padding(node, x, kernel, strides, attr(node, "dilations", [1] * len(kernel)))
        ceil = bool(attr(node, "ceil_mode", 0))
        half = len(pads) // 2
        if kind == "MaxPool":
            if pads[:half] != pads[half:]:
                x, pads = _pad_explicitly(x, pads, -math.inf), [0] * len(pads)
            return F.max_pool2d(x, kernel, strides, pads[:half], attr(node, "dilations", [1] * len(kernel)), ceil_mode=ceil)
        include = bool(attr(node, "count_include_pad", 0))
        if pads[:half] != pads[half:]:
            if not include and any(pads):
                raise OnnxConversionError(f"AveragePool {node.name}: asymmetric padding that excludes the pad is not supported")
            x, pads = _pad_explicitly(x, pads), [0] * len(pads)
        return F.avg_pool2d(x, kernel, strides, pads[:half], ceil_mode=ceil, count_include_pad=include)

    return run


# ---- linear algebra and normalisation ----------------------------------------------------


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


def prelu(x, slope):
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


def _gemm(node, opset, a, b, c=None):
    a = a.t() if attr(node, "transA", 0) else a
    b = b.t() if attr(node, "transB", 0) else b
    out = attr(node, "alpha", 1.0) * (a @ b)
    return out if c is None else out + attr(node, "beta", 1.0) * c


def _layer_norm(node, opset, x, scale, bias=None):
    axis = attr(node, "axis", -1) % x.ndim
    shape = x.shape[axis:]
    return F.layer_norm(x, shape, scale.expand(shape), None if bias is None else bias.expand(shape), attr(node, "epsilon", 1e-5))


def _softmax(kind: Callable):
    def run(node, opset, x):
        if opset >= 13:
            return kind(x, dim=attr(node, "axis", -1))
        axis = attr(node, "axis", 1) % x.ndim  # before opset 13: over all dims from axis on, as one
        return kind(x.reshape(*x.shape[:axis], -1), dim=-1).reshape(x.shape)

    return run


def _reduce(fn: Callable, since: int = 18):
    def run(node, opset, x, axes=None):
        dims = _axes(node, opset, axes, since)
        keep = bool(attr(node, "keepdims", 1))
        if not dims:
            if attr(node, "noop_with_empty_axes", 0):
                return x
            dims = list(range(x.ndim))
        return fn(x, dims, keep)

    return run


# ---- shapes ------------------------------------------------------------------------------


def _shape(node, opset, x):
    if torch.jit.is_tracing():  # traced as a Shape node, so that a re-export keeps the batch dynamic
        return torch._shape_as_tensor(x)[attr(node, "start", 0) : attr(node, "end", None)]
    return torch.tensor(x.shape[attr(node, "start", 0) : attr(node, "end", None)], dtype=torch.int64, device=x.device)


def _reshape(node, opset, x, shape):
    dims = _ints(shape)
    if torch.jit.is_tracing() and 0 not in dims:
        return x.reshape(list(shape.unbind()))  # sizes stay traced (a batch from Shape stays dynamic)
    if not attr(node, "allowzero", 0):
        dims = [x.shape[i] if d == 0 else d for i, d in enumerate(dims)]
    return x.reshape(dims)


def _unsqueeze(node, opset, x, axes=None):
    shape = list(x.shape)
    dims = _axes(node, opset, axes, 13) or []
    rank = len(shape) + len(dims)
    for axis in sorted(a % rank for a in dims):
        shape.insert(axis, 1)
    return x.reshape(shape)


def _squeeze(node, opset, x, axes=None):
    dims = _axes(node, opset, axes, 13)
    if dims is None:
        return x.squeeze()
    return x.squeeze(tuple(a % x.ndim for a in dims))


def _slice(node, opset, x, starts=None, ends=None, axes=None, steps=None):
    if opset < 10:
        starts, ends, axes = attr(node, "starts"), attr(node, "ends"), attr(node, "axes")
    starts, ends = _ints(starts), _ints(ends)
    axes = _ints(axes) if axes is not None else list(range(len(starts)))
    steps = _ints(steps) if steps is not None else [1] * len(starts)
    for start, end, axis, step in zip(starts, ends, axes, steps):
        axis %= x.ndim
        indices = range(*slice(start, end, step).indices(x.shape[axis]))
        if step > 0:
            x = x.narrow(axis, indices.start, len(indices)) if step == 1 else x[(slice(None),) * axis + (slice(start, end, step),)]
        else:  # torch slicing has no negative steps (a TensorFlow channel flip writes one)
            x = x.index_select(axis, torch.tensor(list(indices), dtype=torch.long, device=x.device))
    return x


def _gather(node, opset, x, indices):
    axis = attr(node, "axis", 0) % x.ndim
    flat = indices.reshape(-1).long() % x.shape[axis]
    out = x.index_select(axis, flat)
    return out.reshape((*x.shape[:axis], *indices.shape, *x.shape[axis + 1 :]))


def _split(node, opset, x, split=None):
    axis = attr(node, "axis", 0) % x.ndim
    sizes = _ints(split) if opset >= 13 and split is not None else attr(node, "split")
    if sizes is None:
        parts = attr(node, "num_outputs", len(node.output))
        chunk = math.ceil(x.shape[axis] / parts)
        sizes = [min(chunk, x.shape[axis] - i * chunk) for i in range(parts)]
    return tuple(torch.split(x, list(sizes), dim=axis))


def _pad(node, opset, x, pads=None, value=None, axes=None):
    if opset < 11:
        pads, value = attr(node, "pads"), attr(node, "value", 0.0)
    pads = _ints(pads)
    if axes is not None:
        full = [0] * (2 * x.ndim)
        for i, axis in enumerate(_ints(axes)):
            full[axis % x.ndim], full[axis % x.ndim + x.ndim] = pads[i], pads[i + len(pads) // 2]
        pads = full
    mode = attr(node, "mode", "constant")
    if mode == "constant":
        return _pad_explicitly(x, pads, _scalar(value) or 0.0)
    half = len(pads) // 2
    if any(pads[:2]) or any(pads[half : half + 2]):
        raise OnnxConversionError(f"Pad {node.name}: mode {mode} on the batch or channel axis is not supported")
    spatial = pads[2:half] + pads[half + 2 :]
    return _pad_explicitly(x, spatial, mode="replicate" if mode == "edge" else mode)


def _constant(node, opset=0) -> torch.Tensor:
    from onnx import numpy_helper

    for name in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        value = attr(node, name)
        if value is None:
            continue
        if name == "value":
            return torch.from_numpy(numpy_helper.to_array(value).copy())
        return torch.tensor(value, dtype=torch.float32 if "float" in name else torch.int64)
    raise OnnxConversionError(f"Constant {node.name}: only tensor and number values are supported")


def _constant_of_shape(node, opset, shape):
    from onnx import numpy_helper

    value = attr(node, "value")
    fill = torch.from_numpy(numpy_helper.to_array(value).copy()).reshape(()) if value is not None else torch.tensor(0.0)
    return torch.full(_ints(shape), fill.item(), dtype=fill.dtype)


# ONNX TensorProto element types -> the torch type they run as (every float as float32).
_FLOATS = {1, 10, 11, 16}
_CAST = {9: torch.bool}


def _cast(node, opset, x):
    to = attr(node, "to")
    if to in _FLOATS:
        return x.float()
    return x.to(_CAST.get(to, torch.int64))


# ---- quantisation ------------------------------------------------------------------------


def dequantize(node, opset, x, scale, zero_point=None):
    """DequantizeLinear; a float input (activations whose QuantizeLinear ran as identity) passes."""
    if x.is_floating_point():
        return x
    axis = attr(node, "axis", 1)
    block = attr(node, "block_size", 0)
    x = x.to(scale.dtype)
    zero = torch.zeros_like(scale) if zero_point is None else zero_point.to(scale.dtype)
    if block:
        scale = scale.repeat_interleave(block, dim=axis).narrow(axis, 0, x.shape[axis])
        zero = zero.repeat_interleave(block, dim=axis).narrow(axis, 0, x.shape[axis])
    elif scale.ndim == 1 and scale.numel() > 1:
        shape = [1] * x.ndim
        shape[axis] = -1
        scale, zero = scale.view(shape), zero.view(shape)
    return (x - zero) * scale


def quantize(node, opset, x, scale, zero_point=None):
    """QuantizeLinear for real (constant weights folded at load time)."""
    axis = attr(node, "axis", 1)
    if scale.ndim == 1 and scale.numel() > 1:
        shape = [1] * x.ndim
        shape[axis] = -1
        scale = scale.view(shape)
        zero_point = None if zero_point is None else zero_point.view(shape)
    dtype = torch.uint8 if zero_point is None else zero_point.dtype
    info = torch.iinfo(dtype)
    zero = 0 if zero_point is None else zero_point.to(x.dtype)
    return torch.clamp(torch.round(x / scale) + zero, info.min, info.max).to(dtype)


def _dynamic_quantize(node, opset, x):
    """DynamicQuantizeLinear as the float identity: scale 1 and zero point 0 for what follows."""
    return x, torch.ones((), dtype=x.dtype, device=x.device), torch.zeros((), dtype=torch.uint8, device=x.device)


QUANTISED_ACTIVATIONS = {"QuantizeLinear", "DynamicQuantizeLinear", "ConvInteger", "MatMulInteger"}


def _binary(fn: Callable) -> Callable:
    return lambda n, o, a, b: fn(a, b)


def _unary(fn: Callable) -> Callable:
    return lambda n, o, x: fn(x)


def _variadic(fn: Callable) -> Callable:
    def run(node, opset, *xs):
        out = xs[0]
        for x in xs[1:]:
            out = fn(out, x)
        return out

    return run


def _hard_sigmoid(node, opset, x):
    return torch.clamp(attr(node, "alpha", 0.2) * x + attr(node, "beta", 0.5), 0, 1)


def _clip(node, opset, x, low=None, high=None):
    if opset < 11:
        low, high = attr(node, "min"), attr(node, "max")
    return torch.clamp(x, _scalar(low), _scalar(high))


def _lp_normalization(node, opset, x):
    return F.normalize(x, p=attr(node, "p", 2), dim=attr(node, "axis", -1))


OPS: dict[str, Callable] = {
    # convolution, pooling, linear algebra
    "Conv": _conv,
    "ConvInteger": _conv_integer,
    "Gemm": _gemm,
    "MatMul": _binary(torch.matmul),
    "MatMulInteger": _matmul_integer,
    "MaxPool": _pool("MaxPool"),
    "AveragePool": _pool("AveragePool"),
    "GlobalAveragePool": _unary(lambda x: x.mean(dim=tuple(range(2, x.ndim)), keepdim=True)),
    "GlobalMaxPool": _unary(lambda x: x.amax(dim=tuple(range(2, x.ndim)), keepdim=True)),
    # normalisation
    "BatchNormalization": lambda n, o, x, g, b, m, v: F.batch_norm(x, m, v, g, b, False, 0.0, attr(n, "epsilon", 1e-5)),
    "LayerNormalization": _layer_norm,
    "LpNormalization": _lp_normalization,
    "Softmax": _softmax(torch.softmax),
    "LogSoftmax": _softmax(torch.log_softmax),
    # activations
    "Relu": _unary(F.relu),
    "PRelu": lambda n, o, x, slope: prelu(x, slope),
    "LeakyRelu": lambda n, o, x: F.leaky_relu(x, attr(n, "alpha", 0.01)),
    "Elu": lambda n, o, x: F.elu(x, attr(n, "alpha", 1.0)),
    "Selu": _unary(F.selu),
    "Sigmoid": _unary(torch.sigmoid),
    "Tanh": _unary(torch.tanh),
    "Softplus": _unary(F.softplus),
    "HardSigmoid": _hard_sigmoid,
    "HardSwish": _unary(F.hardswish),
    "Gelu": lambda n, o, x: F.gelu(x, approximate=attr(n, "approximate", "none")),
    "Erf": _unary(torch.erf),
    "Clip": _clip,
    # arithmetic
    "Add": _binary(torch.add),
    "Sub": _binary(torch.sub),
    "Mul": _binary(torch.mul),
    "Div": lambda n, o, a, b: a / b if a.is_floating_point() or b.is_floating_point() else torch.div(a, b, rounding_mode="trunc"),
    "Pow": _binary(torch.pow),
    "Sqrt": _unary(torch.sqrt),
    "Reciprocal": _unary(torch.reciprocal),
    "Neg": _unary(torch.neg),
    "Abs": _unary(torch.abs),
    "Exp": _unary(torch.exp),
    "Log": _unary(torch.log),
    "Max": _variadic(torch.maximum),
    "Min": _variadic(torch.minimum),
    "Sum": _variadic(torch.add),
    "Mean": lambda n, o, *xs: _variadic(torch.add)(n, o, *xs) / len(xs),
    # reductions
    "ReduceMean": _reduce(lambda x, d, k: x.mean(dim=d, keepdim=k)),
    "ReduceSum": _reduce(lambda x, d, k: x.sum(dim=d, keepdim=k), since=13),
    "ReduceMax": _reduce(lambda x, d, k: x.amax(dim=d, keepdim=k)),
    "ReduceMin": _reduce(lambda x, d, k: x.amin(dim=d, keepdim=k)),
    "ReduceL2": _reduce(lambda x, d, k: x.pow(2).sum(dim=d, keepdim=k).sqrt()),
    "ReduceSumSquare": _reduce(lambda x, d, k: x.pow(2).sum(dim=d, keepdim=k)),
    # logic
    "Equal": _binary(torch.eq),
    "Less": _binary(torch.lt),
    "Greater": _binary(torch.gt),
    "Not": _unary(torch.logical_not),
    "Where": lambda n, o, c, a, b: torch.where(c.bool(), a, b),
    # shapes and data movement
    "Reshape": _reshape,
    "Flatten": lambda n, o, x: x.flatten(attr(n, "axis", 1)) if attr(n, "axis", 1) > 0 else x.reshape(1, -1),
    "Transpose": lambda n, o, x: x.permute(*attr(n, "perm", list(range(x.ndim))[::-1])),
    "Concat": lambda n, o, *xs: torch.cat(xs, dim=attr(n, "axis")),
    "Unsqueeze": _unsqueeze,
    "Squeeze": _squeeze,
    "Slice": _slice,
    "Gather": _gather,
    "Split": _split,
    "Pad": _pad,
    "Shape": _shape,
    "Expand": lambda n, o, x, shape: x.expand(torch.broadcast_shapes(x.shape, tuple(_ints(shape)))),
    "Tile": lambda n, o, x, repeats: x.repeat(*_ints(repeats)),
    "ConstantOfShape": _constant_of_shape,
    "Cast": _cast,
    "Identity": _unary(lambda x: x),
    "Dropout": lambda n, o, x, *rest: x,
    "Constant": _constant,
    # quantisation
    "DequantizeLinear": dequantize,
    "QuantizeLinear": lambda n, o, x, *rest: x,
    "DynamicQuantizeLinear": _dynamic_quantize,
}

# Where folding constant nodes at load time must compute what the quantised graph stores.
CONSTANT_OPS: dict[str, Callable] = {"QuantizeLinear": quantize}

# What to try when an operator is missing (printed with its name, node and opset).
MISSING_OPERATOR_ADVICE = (
    "re-export the model with torch.onnx.export(..., dynamo=False, opset_version=17), simplify it with "
    "onnxslim or onnxsim, or pass the PyTorch model as a TorchScript file (torch.jit.trace)"
)


def as_float32(array: np.ndarray) -> torch.Tensor:
    """An initialiser as a writable tensor; float64 and float16 as float32 (we run in float32)."""
    array = np.array(array)
    if array.dtype in (np.float64, np.float16):
        array = array.astype(np.float32)
    return torch.from_numpy(array)
