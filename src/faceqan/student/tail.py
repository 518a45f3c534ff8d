"""The fine-tuned student's head: copies of the FR model's last residual blocks, tuned to the
teacher's labels, then global average pooling and a linear map to the normal score of q_adv's
rank (published FaceQAN-style students partly fine-tune the backbone; docs/student.md).

The frozen model runs as ever, so its embedding and the mirror's give s_f exactly; a forward
hook takes the output of the block before the tuned ones, and the tuned copies go on from there.
Models whose residual blocks are one ``nn.Sequential`` at ``network.blocks`` (the built-in dlib),
and converted ONNX graphs, whose tail is cut after a block boundary (student.graph_tail).

With ``rank`` the copies' conv weights stay the model's and learn only a rank-``rank`` change
each (LoRA, as a torch parametrization) plus their biases: the file then holds those few tensors,
and the rest is taken from the model when the head is loaded.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from ..algorithm import model_device
from .graph_tail import GraphTail, cut_at, cut_for, graph_tail_input_of, onnx_module_of
from .head import q_adv_from_score

BLOCKS = "network.blocks"
LEARNING_RATES = {"blocks": 1e-4, "low_rank": 1e-3, "linear": 1e-3}  # small for the pretrained blocks, larger for new tensors
BATCH = 64
FROZEN = ".original"  # parametrize's name for a conv's own weight, which a low-rank tail keeps from the model
FACTORS = (".up", ".down")  # a low-rank change's tensors, stored as float16


def _blocks_or_none(model: nn.Module) -> nn.Sequential | None:
    try:
        blocks = model.get_submodule(BLOCKS)
    except AttributeError:
        return None
    return blocks if isinstance(blocks, nn.Sequential) else None


def residual_blocks(model: nn.Module) -> nn.Sequential:
    """The model's residual blocks; refused in one line for a model without them."""
    blocks = _blocks_or_none(model)
    if blocks is None:
        name = getattr(getattr(model, "spec", None), "name", type(model).__name__)
        raise ValueError(f"fine-tuning needs the model's residual blocks as one nn.Sequential at `{BLOCKS}` (the built-in dlib has them) or a converted ONNX graph; {name!r} is neither: distill a ridge student instead (no --finetune-blocks)")
    return blocks


@contextmanager
def tail_input_of(model: nn.Module, split: int) -> Iterator[list[torch.Tensor]]:
    """While open, the tail's input of each forward pass (the output of block ``split - 1``, or of
    graph node ``split``) is appended to the list yielded."""
    graph = onnx_module_of(model) if _blocks_or_none(model) is None else None
    if graph is not None:
        with graph_tail_input_of(graph, split) as seen:
            yield seen
        return
    seen: list[torch.Tensor] = []
    handle = residual_blocks(model)[split - 1].register_forward_hook(lambda _m, _i, out: seen.append(out))
    try:
        yield seen
    finally:
        handle.remove()


class LowRankChange(nn.Module):
    """A conv weight plus ``up @ down``, a rank-r change (``up`` starts at zero: the copy starts as the model's)."""

    def __init__(self, weight: torch.Tensor, rank: int) -> None:
        super().__init__()
        fan_in = weight[0].numel()
        self.down = nn.Parameter(torch.randn(rank, fan_in) / fan_in**0.5)
        self.up = nn.Parameter(torch.zeros(weight.shape[0], rank))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight + (self.up @ self.down).view_as(weight)


def add_low_rank_changes(blocks: nn.Module, rank: int) -> None:
    """Give every conv in ``blocks`` a trainable rank-``rank`` change of its (then frozen) weight."""
    for conv in [m for m in blocks.modules() if isinstance(m, nn.Conv2d)]:
        parametrize.register_parametrization(conv, "weight", LowRankChange(conv.weight, rank))
        conv.parametrizations.weight.original.requires_grad_(False)


class TailHead(nn.Module):
    """Tuned blocks ``split`` .. end, mean pooling and a linear map: tail input -> q_adv on the
    teacher's scale (through ``quantiles``, the training q_adv at evenly spaced probabilities).
    ``rank`` 0: every tensor of the blocks is tuned; otherwise low-rank changes and biases."""

    def __init__(self, blocks: nn.Sequential, channels: int, quantiles: torch.Tensor, split: int, rank: int = 0, report: dict | None = None) -> None:
        super().__init__()
        if rank:
            add_low_rank_changes(blocks, rank)
        self.blocks, self.linear = blocks, nn.Linear(channels, 1)
        self.register_buffer("quantiles", torch.as_tensor(quantiles, dtype=torch.float32))
        self.split, self.rank, self.report = split, rank, report or {}

    def tuned_parameters(self) -> list[nn.Parameter]:
        """The blocks' tensors that training changes (all of them, or the low-rank factors and biases)."""
        return [p for name, p in self.blocks.named_parameters() if not name.endswith(FROZEN)]

    def _from_model(self, name: str) -> bool:
        """Whether the tensor ``name`` is the model's own, taken from it when the head is built:
        frozen conv weights, and a graph tail's constants (PReLU slopes, clip bounds...)."""
        return name.endswith(FROZEN) or (isinstance(self.blocks, GraphTail) and name.removeprefix("blocks.") in self.blocks.constant_names.values())

    def learned_state(self) -> dict[str, torch.Tensor]:
        """What a student file must hold: the whole state, less the model's own tensors; low-rank
        factors in float16 (half the file; loading widens them to float32 again)."""
        return {name: (t.half() if name.endswith(FACTORS) else t).detach().cpu().contiguous() for name, t in self.state_dict().items() if not self._from_model(name)}

    def load_learned_state(self, state: dict[str, torch.Tensor]) -> None:
        """Load ``learned_state``'s tensors (the frozen weights stay the model's); refuses a tensor
        this head lacks or a learned one that is missing."""
        own = self.state_dict()
        if unknown := sorted(set(state) - set(own)):
            raise ValueError(f"no tensor {unknown[0]!r} in this head")
        if missing := sorted(name for name in own if name not in state and not self._from_model(name)):
            raise ValueError(f"the tensor {missing[0]!r} is missing")
        self.load_state_dict({**own, **state})

    def merge(self) -> TailHead:
        """Bake the low-rank changes into the conv weights (no product per pass when scoring);
        the head is then a plain tuned tail (rank 0)."""
        for conv in self.blocks.modules():
            if parametrize.is_parametrized(conv, "weight"):
                parametrize.remove_parametrizations(conv, "weight", leave_parametrized=True)
        self.rank = 0
        return self

    def score(self, tail_input: torch.Tensor) -> torch.Tensor:
        """The normal-score prediction (the head's raw output, in rank order)."""
        return self.linear(self.blocks(tail_input).mean(dim=(2, 3))).squeeze(1)

    def forward(self, tail_input: torch.Tensor) -> torch.Tensor:
        return q_adv_from_score(self.score(tail_input), self.quantiles)


def tail_split(model: nn.Module, count: int) -> int:
    """The index of the first of the last ``count`` blocks (for a graph: the node after which the
    shortest tail with ``count`` convolutions starts); refused in one line where there are not that many."""
    graph = onnx_module_of(model) if _blocks_or_none(model) is None else None
    if graph is not None:
        return cut_for(graph, model.spec.input_size, count).split
    blocks = residual_blocks(model)
    if not 1 <= count < len(blocks):
        raise ValueError(f"--finetune-blocks must lie in 1 .. {len(blocks) - 1} for this model ({len(blocks)} residual blocks), got {count}")
    return len(blocks) - count


def new_tail(model: nn.Module, count: int, quantiles: np.ndarray, seed: int = 0, rank: int = 0) -> TailHead:
    """An untrained head whose blocks are copies of the model's last ``count`` blocks (its linear
    map and low-rank factors, for ``rank`` > 0, initialised from ``seed``)."""
    return tail_at(model, tail_split(model, count), quantiles, seed, rank)


def tail_copy(model: nn.Module, split: int) -> nn.Module:
    """A trainable copy of what the tail computes from its input."""
    graph = onnx_module_of(model) if _blocks_or_none(model) is None else None
    if graph is not None:
        return GraphTail(graph, cut_at(graph, model.spec.input_size, split))
    return copy.deepcopy(residual_blocks(model)[split:])


def tail_at(model: nn.Module, split: int, quantiles: np.ndarray, seed: int = 0, rank: int = 0) -> TailHead:
    """``new_tail`` starting at ``split`` (as a student file records it)."""
    tuned = tail_copy(model, split).float().requires_grad_(True)
    size = model.spec.input_size
    with torch.no_grad(), tail_input_of(model, split) as seen:
        model(torch.zeros(1, 3, size, size, device=model_device(model)))
        out = tuned(seen[0].float())
    if out.ndim != 4:
        raise ValueError(f"the last residual blocks give {out.ndim}-D outputs; the tail head pools (N, C, H, W) maps")
    with torch.random.fork_rng(devices=[]):  # the seed decides the linear map without touching the caller's generator
        torch.manual_seed(seed)
        return TailHead(tuned, int(out.shape[1]), torch.from_numpy(np.asarray(quantiles, np.float32)), split, rank)


def tail_inputs_and_embeddings(model: nn.Module, split: int, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, C, H, W) tail inputs and (N, D) embeddings of aligned faces, in one forward pass."""
    with torch.no_grad(), tail_input_of(model, split) as seen:
        embedding = model(images)
    return seen[0], embedding


def finetune(head: TailHead, inputs: torch.Tensor, targets: torch.Tensor, epochs: int, seed: int = 0) -> TailHead:
    """Fit ``head`` to normal-score targets: SmoothL1, AdamW (LEARNING_RATES, weight decay 1e-4),
    batches of 64 in a seeded order; returns it in eval mode."""
    head.train()
    tuned = head.tuned_parameters()
    for p in tuned + list(head.linear.parameters()):
        p.requires_grad_(True)
    groups = [{"params": tuned, "lr": LEARNING_RATES["low_rank" if head.rank else "blocks"]}, {"params": head.linear.parameters(), "lr": LEARNING_RATES["linear"]}]
    optimiser = torch.optim.AdamW(groups, weight_decay=1e-4)
    order = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for batch in torch.randperm(len(inputs), generator=order).split(BATCH):
            optimiser.zero_grad()
            F.smooth_l1_loss(head.score(inputs[batch]), targets[batch]).backward()
            optimiser.step()
    return head.eval().requires_grad_(False)
