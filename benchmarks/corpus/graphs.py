"""The corpus's ONNX files: each architecture exported the ways users export, quantised and
float16 copies, and a TensorFlow-style graph written with onnx.helper."""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

EXPORTERS = ("torchscript", "dynamo")


def onnxruntime_embeddings(path: Path, raw: np.ndarray, one_at_a_time: bool) -> np.ndarray:
    """onnxruntime's output for ``raw`` (the graph's own input layout); face by face for a graph
    exported for a fixed batch of 1."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0].name
    if one_at_a_time:
        return np.concatenate([session.run(None, {feed: raw[i : i + 1]})[0] for i in range(len(raw))])
    return session.run(None, {feed: raw})[0]
OPSETS = (11, 13, 17)


def export(network: nn.Module, size: int, path: Path, exporter: str, opset: int, dynamic_batch: bool) -> int:
    """Export ``network`` to ``path``; return the opset the file holds (the dynamo exporter
    writes 18 where it cannot convert down)."""
    import onnx

    example = (torch.rand(2 if dynamic_batch else 1, 3, size, size) * 2 - 1,)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            shapes = ({0: torch.export.Dim("batch", min=1, max=1024)},) if dynamic_batch else None
            torch.onnx.export(network, example, str(path), dynamo=True, opset_version=opset, dynamic_shapes=shapes, external_data=False)
        else:
            axes = {"input": {0: "batch"}, "embedding": {0: "batch"}} if dynamic_batch else None
            torch.onnx.export(network, example, str(path), dynamo=False, opset_version=opset, input_names=["input"],
                              output_names=["embedding"], dynamic_axes=axes)  # fmt: skip
    model = onnx.load(str(path), load_external_data=False)
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def quantise_dynamic(source: Path, path: Path) -> None:
    """onnxruntime's dynamic int8 quantisation (ConvInteger, MatMulInteger, DynamicQuantizeLinear)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        quantize_dynamic(str(source), str(path), weight_type=QuantType.QInt8, op_types_to_quantize=["Conv", "MatMul", "Gemm"])


def quantise_static(source: Path, path: Path, size: int, faces: int = 8) -> None:
    """onnxruntime's static int8 quantisation in QDQ format, calibrated on seeded random images."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    import onnxruntime as ort

    name = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"]).get_inputs()[0].name
    rng = np.random.default_rng(0)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{name: rng.uniform(-1, 1, (1, 3, size, size)).astype(np.float32)} for _ in range(faces)])

        def get_next(self):
            return next(self.batches, None)

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        quantize_static(str(source), str(path), Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8,
                        weight_type=QuantType.QInt8, per_channel=True)  # fmt: skip


def to_float16(source: Path, path: Path) -> None:
    """Weights and computation in float16, float32 input and output (Cast nodes at the ends), as
    onnxconverter-common's convert_float_to_float16(keep_io_types=True) writes it."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    for init in graph.initializer:
        if init.data_type == TensorProto.FLOAT:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name))
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.TENSOR and attribute.t.data_type == TensorProto.FLOAT:
                attribute.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(attribute.t).astype(np.float16)))
    image, out = graph.input[0].name, graph.output[0].name
    for node in graph.node:
        node.input[:] = [image + "_fp16" if name == image else name for name in node.input]
        node.output[:] = [out + "_fp16" if name == out else name for name in node.output]
        for attribute in node.attribute:  # Cast to float inside the graph stays in float16
            if node.op_type == "Cast" and attribute.name == "to" and attribute.i == TensorProto.FLOAT:
                attribute.i = TensorProto.FLOAT16
    graph.node.insert(0, helper.make_node("Cast", [image], [image + "_fp16"], to=TensorProto.FLOAT16))
    graph.node.append(helper.make_node("Cast", [out + "_fp16"], [out], to=TensorProto.FLOAT))
    del graph.value_info[:]
    onnx.save(model, str(path))


def tensorflow_style(path: Path, seed: int = 0, width: int = 16, embedding: int = 64) -> None:
    """What tf2onnx writes for a Keras face model: NHWC input, a Transpose to NCHW, convs with
    ``auto_pad SAME_UPPER``, a channel flip by a negative-step Slice, and a dense layer as MatMul + Add."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)

    def weight(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array((rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))).astype(np.float32), name)

    inits = [
        weight("w1", width, 3, 3, 3), weight("w2", width * 2, width, 3, 3), weight("w3", width * 2, width * 2, 3, 3),
        weight("dense", width * 2, embedding),
        numpy_helper.from_array(rng.standard_normal(embedding).astype(np.float32) * 0.1, "dense_bias"),
        numpy_helper.from_array(rng.standard_normal(width).astype(np.float32) * 0.1, "b1"),
        numpy_helper.from_array(np.array([2], np.int64), "start"), numpy_helper.from_array(np.array([-4], np.int64), "end"),
        numpy_helper.from_array(np.array([1], np.int64), "axis"), numpy_helper.from_array(np.array([-1], np.int64), "step"),
        numpy_helper.from_array(np.array([-1, width * 2], np.int64), "flat"),
    ]  # fmt: skip
    nodes = [
        helper.make_node("Transpose", ["input_1"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Slice", ["nchw", "start", "end", "axis", "step"], ["bgr"]),  # RGB -> BGR
        helper.make_node("Conv", ["bgr", "w1", "b1"], ["c1"], strides=[2, 2], auto_pad="SAME_UPPER"),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], strides=[2, 2], auto_pad="SAME_UPPER"),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("MaxPool", ["r2"], ["p2"], kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER"),
        helper.make_node("Conv", ["p2", "w3"], ["c3"], auto_pad="SAME_LOWER"),
        helper.make_node("Relu", ["c3"], ["r3"]),
        helper.make_node("GlobalAveragePool", ["r3"], ["pooled"]),
        helper.make_node("Reshape", ["pooled", "flat"], ["flattened"]),
        helper.make_node("MatMul", ["flattened", "dense"], ["projected"]),
        helper.make_node("Add", ["projected", "dense_bias"], ["embedding"]),
    ]
    graph = helper.make_graph(
        nodes, "tf_style_face", [helper.make_tensor_value_info("input_1", TensorProto.FLOAT, ["unk__0", 112, 112, 3])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["unk__0", embedding])], inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="tf2onnx-style")
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
