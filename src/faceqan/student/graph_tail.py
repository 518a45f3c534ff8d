"""The fine-tuned student's tail for a converted ONNX graph (``OnnxModule``): the graph's nodes
from a cut tensor to its last feature map, its convolutions as ``nn.Conv2d`` modules, so that they
can be tuned and low-rank changes parametrise them (student.tail).

A cut is a node's output from which the last feature map can be computed without any earlier
tensor (in a residual net: a block boundary); ``split`` is that node's index. The tail for
``--finetune-blocks N`` is the shortest one that holds at least N convolutions.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from ..models.onnx_module import OnnxModule, run_nodes
from ..models.onnx_ops import attr


def onnx_module_of(model: nn.Module) -> OnnxModule | None:
    """The model's converted graph, if it is one."""
    return next((m for m in model.modules() if isinstance(m, OnnxModule)), None)


@dataclass(frozen=True)
class Cut:
    split: int  # index of the node whose first output the tail starts from
    nodes: tuple[int, ...]  # indices of the nodes the tail runs, in order
    convs: int  # convolutions among them


def _last_feature_map(module: OnnxModule, size: int) -> int:
    """Index of the last node whose output is a 4-D map (the tail's end)."""
    ranks: list[int] = []
    previous, module.tap = module.tap, lambda t: ranks.append(t.ndim if isinstance(t, torch.Tensor) else 0)
    try:
        with torch.no_grad():
            module(torch.zeros(1, 3, size, size, device=next(iter(module.buffers())).device))
    finally:
        module.tap = previous
    maps = [i for i, rank in enumerate(ranks) if rank == 4]
    if not maps:
        raise ValueError("the graph computes no (N, C, H, W) feature map to fine-tune")
    return maps[-1]


def cuts(module: OnnxModule, size: int) -> list[Cut]:
    """Every cut of the graph before its last feature map, first to last."""
    end = _last_feature_map(module, size)
    producer = {name: i for i, node in enumerate(module.nodes) for name in node.output}
    constants = set(module.constant_names)
    found = []
    for split in range(end):
        start = module.nodes[split].output[0]
        needed, stack, computable = set(), [end], True
        while stack and computable:
            index = stack.pop()
            if index in needed:
                continue
            needed.add(index)
            for name in module.nodes[index].input:
                if name in ("", start) or name in constants:
                    continue
                if name not in producer or producer[name] <= split:
                    computable = False  # needs the image or a tensor from before the cut
                    break
                stack.append(producer[name])
        convs = sum(module.nodes[i].op_type == "Conv" for i in needed)
        if computable and convs:
            found.append(Cut(split, tuple(sorted(needed)), convs))
    return found


def cut_for(module: OnnxModule, size: int, count: int) -> Cut:
    """The shortest tail with at least ``count`` convolutions; refused in one line where there is none."""
    every = cuts(module, size)
    usable = [cut for cut in every if cut.convs >= count]
    if count < 1 or not usable:
        most = max((cut.convs for cut in every), default=0)
        raise ValueError(f"--finetune-blocks counts convolutions for an ONNX graph: 1 .. {most} for this one (the most a tail cut after a block boundary holds), got {count}")
    return usable[-1]


def cut_at(module: OnnxModule, size: int, split: int) -> Cut:
    """The cut starting after node ``split`` (a student file's); refused where that is none."""
    for cut in cuts(module, size):
        if cut.split == split:
            return cut
    raise ValueError(f"node {split} of this graph is no cut its last feature map can be computed from")


class GraphTail(nn.Module):
    """The nodes of ``cut``: the cut tensor -> the last feature map, convolutions as nn.Conv2d."""

    def __init__(self, module: OnnxModule, cut: Cut) -> None:
        super().__init__()
        self.opset = module.opset
        self.nodes = [module.nodes[i] for i in cut.nodes]
        self.input_name = module.nodes[cut.split].output[0]
        self.output_name = self.nodes[-1].output[0]
        buffers = dict(module.named_buffers())
        self.convs = nn.ModuleDict()
        for position, node in enumerate(self.nodes):
            conv = _as_conv2d(node, module, buffers)
            if conv is not None:
                self.convs[str(position)] = conv
        used = {n for p, node in enumerate(self.nodes) if str(p) not in self.convs for n in node.input if n in module.constant_names}
        self.constant_names = {name: f"c{i}" for i, name in enumerate(sorted(used))}
        for name, buffer_name in self.constant_names.items():
            self.register_buffer(buffer_name, buffers[module.constant_names[name]].clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values: dict[str, torch.Tensor | None] = {self.input_name: x, "": None}
        for name, buffer_name in self.constant_names.items():
            values[name] = getattr(self, buffer_name)
        return run_nodes(self.nodes, self.opset, values, self.convs)[self.output_name]


def _as_conv2d(node, module: OnnxModule, buffers: dict[str, torch.Tensor]) -> nn.Conv2d | None:
    """An nn.Conv2d for a 2-D Conv with constant weights and explicit, symmetric padding."""
    if node.op_type != "Conv" or node.input[1] not in module.constant_names:
        return None
    if attr(node, "auto_pad", "NOTSET") not in ("NOTSET", ""):
        return None
    weight = buffers[module.constant_names[node.input[1]]]
    pads = attr(node, "pads", [0, 0, 0, 0])
    if weight.ndim != 4 or pads[:2] != pads[2:]:
        return None
    has_bias = len(node.input) > 2 and node.input[2] in module.constant_names
    groups = attr(node, "group", 1)
    conv = nn.Conv2d(weight.shape[1] * groups, weight.shape[0], tuple(weight.shape[2:]), tuple(attr(node, "strides", [1, 1])),
                     tuple(pads[:2]), tuple(attr(node, "dilations", [1, 1])), groups, bias=has_bias)  # fmt: skip
    with torch.no_grad():
        conv.weight.copy_(weight)
        if has_bias:
            conv.bias.copy_(buffers[module.constant_names[node.input[2]]])
    return conv.to(weight.device)


@contextmanager
def graph_tail_input_of(module: OnnxModule, split: int) -> Iterator[list[torch.Tensor]]:
    """While open, node ``split``'s first output of each forward pass is appended to the list yielded."""
    seen: list[torch.Tensor] = []
    counter = itertools.count()
    nodes = len(module.nodes)

    def keep(tensor: torch.Tensor) -> None:
        if next(counter) % nodes == split:  # the tap sees every node once per pass, in order
            seen.append(tensor)

    previous, module.tap = module.tap, keep
    try:
        yield seen
    finally:
        module.tap = previous
