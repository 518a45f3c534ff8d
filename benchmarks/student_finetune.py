"""Student v2, option (a): fine-tune the FR model's last blocks with a linear head, compared
with the ridge student on the same validation (benchmarks/student_variants.py: 5 folds over
people, all pairs among the training originals, the model's own errors).

    python benchmarks/student_finetune.py [--model dlib] [--blocks 3] [--epochs 3] [--refine-labels 0.5]

The frozen part runs once per face (its output cached in runs/student/v2/tail_input_MODEL.npy);
then per fold a copy of the last ``--blocks`` residual blocks and a linear head on their
pooled output learn the normal scores of the teacher's q_adv ranks (SmoothL1, AdamW, learning
rates 1e-4 for the blocks and 1e-3 for the head, seeded); with ``--refine-labels THETA`` both
the fine-tuned and the ridge student learn the labels refined by identity (faceqan.student.refine). dlib only: its blocks are a
``Sequential``. Rows: the teacher, s_f, the ridge student, the fine-tuned one, and their mean.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import ndtr
from torch import nn

from faceqan.faces.prepare import FacePreparer
from faceqan.methods.base import QualityMethod
from faceqan.models import create_model
from faceqan.pipeline import score_stream
from faceqan.student.head import fit_head, normal_scores
from faceqan.student.refine import refine_labels

from student_variants import out_of_fold, print_table, validation_data


class TailInput(QualityMethod):
    """The output of one block of the network, flattened: what the fine-tuned tail starts from."""

    name = "tail-input"
    columns = ("tail_input",)

    def __init__(self, model: nn.Module, block: nn.Module) -> None:
        super().__init__(model)
        self.block = block

    def compute(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        seen: list[torch.Tensor] = []
        handle = self.block.register_forward_hook(lambda _m, _i, out: seen.append(out))
        with torch.no_grad():
            self.model(images)
        handle.remove()
        return {"tail_input": seen[0].flatten(1)}


def tail_inputs(paths: list[str], model, block: nn.Module, file: Path) -> np.ndarray:
    if file.exists():
        return np.load(file)
    rows = {}
    for batch in score_stream(paths, FacePreparer(model.spec, landmarks="refined"), TailInput(model, block), 32):
        rows.update({row["path"]: row["tail_input"] for row in batch if row["face"] == 0 and row["status"] == "ok"})
    values = np.array([rows[p] for p in paths], np.float32)
    np.save(file, values)
    return values


class Tail(nn.Module):
    def __init__(self, blocks: nn.Module, channels: int) -> None:
        super().__init__()
        self.blocks, self.head = blocks, nn.Linear(channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(x).mean(dim=(2, 3))).squeeze(1)


def finetune(x: torch.Tensor, y: torch.Tensor, template: nn.Module, channels: int, epochs: int, seed: int = 0) -> Tail:
    torch.manual_seed(seed)
    tail = Tail(copy.deepcopy(template).requires_grad_(True), channels)
    optimiser = torch.optim.AdamW([{"params": tail.blocks.parameters(), "lr": 1e-4}, {"params": tail.head.parameters(), "lr": 1e-3}], weight_decay=1e-4)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for batch in torch.randperm(len(x), generator=generator).split(64):
            optimiser.zero_grad()
            F.smooth_l1_loss(tail(x[batch]), y[batch]).backward()
            optimiser.step()
    return tail.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="dlib")
    parser.add_argument("--blocks", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--refine-labels", type=float, default=0.0, metavar="THETA")
    parser.add_argument("--cache", default="runs/cache")
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = create_model(args.model)
    v = validation_data(args.model, model, f"runs/student/v2/labels_{args.model}.csv", args.cache)
    d = v.data
    blocks = model.network.blocks
    split = len(blocks) - args.blocks
    shape = None
    probe: list[torch.Tensor] = []
    handle = blocks[split - 1].register_forward_hook(lambda _m, _i, out: probe.append(out))
    with torch.no_grad():
        model(torch.zeros(1, 3, model.spec.input_size, model.spec.input_size))
    handle.remove()
    shape = probe[0].shape[1:]
    inputs = tail_inputs(d.paths, model, blocks[split - 1], Path(f"runs/student/v2/tail_input_{args.model}_{split}.npy"))
    x = torch.from_numpy(inputs).view(-1, *shape)
    target = refine_labels(d.q_adv, v.embeddings, d.groups, args.refine_labels)
    y = torch.from_numpy(normal_scores(target)).float()
    template = blocks[split:]
    channels = int(template[-1].conv2.out_channels)
    print(f"{args.model}: {len(d.paths)} faces; fine-tuning {args.blocks} blocks ({sum(p.numel() for p in template.parameters())} weights, "
          f"{len(list(template.parameters()))} tensors) from {tuple(shape)}, {args.epochs} epochs, labels refined {args.refine_labels:g}", flush=True)  # fmt: skip

    def tuned(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        tail = finetune(x[train], y[train], template, channels, args.epochs)
        with torch.no_grad():
            return tail(x[test]).numpy()

    def ridge(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        return fit_head(d.features[train], target[train], d.groups[train]).score(d.features[test])

    scores = {"ridge": out_of_fold(v, ridge), f"fine-tuned {args.blocks}": out_of_fold(v, tuned)}
    scores["mean of both"] = (normal_scores(scores["ridge"]) + normal_scores(scores[f"fine-tuned {args.blocks}"])) / 2
    quantiles = np.quantile(d.q_adv, np.linspace(0, 1, 1001))
    qualities = {"teacher": (d.q_adv * v.s_f).clip(0) ** 5, "s_f": v.s_f}
    for name, score in scores.items():  # normal scores back to q_adv's scale, as the student's head does
        q_adv = np.interp(ndtr(normal_scores(score)), np.linspace(0, 1, 1001), quantiles)
        qualities[name] = (q_adv * v.s_f).clip(0) ** 5
    print_table(v, qualities)


if __name__ == "__main__":
    main()
