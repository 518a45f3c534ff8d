"""Student v2, option (a): fine-tune the FR model's last blocks with a linear head, compared
with the ridge student on the same validation (benchmarks/student_variants.py: 5 folds over
people, all pairs among the training originals, the model's own errors).

    python benchmarks/student_finetune.py [--model dlib] [--blocks 3] [--epochs 3] [--refine-labels 0.5] [--rank 8]

The frozen part runs once per face (its output cached in runs/student/v2/tail_input_MODEL_SPLIT.npy);
then per fold a copy of the last ``--blocks`` residual blocks and a linear head on their
pooled output learn the normal scores of the teacher's q_adv ranks (faceqan.student.tail's
recipe, as `faceqan distill --finetune-blocks` uses it); with ``--refine-labels THETA`` both
the fine-tuned and the ridge student learn the labels refined by identity (faceqan.student.refine); with
``--rank R`` the blocks learn only rank-R changes of their conv weights and their biases. dlib's
blocks are a ``Sequential``; for SFace (an ONNX graph) ``--blocks`` counts convolutions (student.graph_tail). Rows: the teacher, s_f, the ridge student, the fine-tuned one, and their mean.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from scipy.special import ndtr


from faceqan.faces.prepare import FacePreparer
from faceqan.models import create_model
from faceqan.pipeline import chips_to_tensor, prepared_batches
from faceqan.student.head import fit_head, normal_scores
from faceqan.student.refine import refine_labels, refine_labels_by_centre
from faceqan.student.tail import LEARNING_RATES, finetune, new_tail, tail_copy, tail_inputs_and_embeddings, tail_split

from student_variants import out_of_fold, print_table, validation_data


def tail_inputs(paths: list[str], model, split: int, file: Path) -> np.ndarray:
    """Tail inputs of each path's largest face (NaN rows where none was found), cached in
    ``file``. Held as arrays as they come (a graph's tail input can be 100 KB per face: 12,000
    faces as Python lists outgrew the machine's 24 GB)."""
    if file.exists():
        return np.load(file)
    rows: dict[str, np.ndarray] = {}
    for faces in prepared_batches(paths, FacePreparer(model.spec, landmarks="refined"), 32):
        ok = [face for face in faces if face.face == 0 and face.chip is not None]
        if ok:
            inputs = tail_inputs_and_embeddings(model, split, chips_to_tensor([face.chip for face in ok]))[0]
            rows.update({face.path: row for face, row in zip(ok, inputs.flatten(1).float().numpy())})
    width = len(next(iter(rows.values())))
    values = np.full((len(paths), width), np.nan, np.float32)
    for i, path in enumerate(paths):
        if path in rows:
            values[i] = rows[path]
    file.parent.mkdir(parents=True, exist_ok=True)
    np.save(file, values)
    return values


def input_shape(model, split: int) -> tuple[int, ...]:
    """(C, H, W) of the tuned blocks' input."""
    size = model.spec.input_size
    return tuple(tail_inputs_and_embeddings(model, split, torch.zeros(1, 3, size, size))[0].shape[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="dlib")
    parser.add_argument("--blocks", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--refine-labels", type=float, default=0.0, metavar="THETA")
    parser.add_argument("--refine-by", choices=("pairs", "centre"), default="pairs", help="pairs: IWBF 2023's mated-pair ranks; centre: eDifFIQA's similarity to the person's better half")
    parser.add_argument("--rank", type=int, default=0, help="0: tune every tensor of the blocks; R: rank-R changes of the conv weights and the biases")
    parser.add_argument("--low-rank-lr", type=float, default=LEARNING_RATES["low_rank"])
    parser.add_argument("--bootstrap", type=int, default=0, help="also paired intervals against s_f over this many identity-grouped resamples")
    parser.add_argument("--cache", default="runs/cache")
    args = parser.parse_args()
    torch.set_num_threads(2)
    LEARNING_RATES["low_rank"] = args.low_rank_lr
    model = create_model(args.model)
    v = validation_data(args.model, model, f"runs/student/v2/labels_{args.model}.csv", args.cache)
    d = v.data
    split = tail_split(model, args.blocks)
    x = torch.from_numpy(tail_inputs(d.paths, model, split, Path(f"runs/student/v2/tail_input_{args.model}_{split}.npy"))).float().view(-1, *input_shape(model, split))
    refine = refine_labels if args.refine_by == "pairs" else refine_labels_by_centre
    target = refine(d.q_adv, v.embeddings, d.groups, args.refine_labels)
    y = torch.from_numpy(normal_scores(target)).float()
    template = tail_copy(model, split)
    print(f"{args.model}: {len(d.paths)} faces; fine-tuning {args.blocks} blocks ({sum(p.numel() for p in template.parameters())} weights, "
          f"{len(list(template.parameters()))} tensors) from {tuple(x.shape[1:])}, {args.epochs} epochs, rank {args.rank or 'full'} (lr {args.low_rank_lr:g}), labels refined {args.refine_labels:g} by {args.refine_by}", flush=True)  # fmt: skip

    def tuned(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        head = finetune(new_tail(model, args.blocks, d.q_adv, rank=args.rank), x[train], y[train], args.epochs)
        with torch.no_grad():
            return head.score(x[test]).numpy()

    def ridge(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        return fit_head(d.features[train], target[train], d.groups[train]).score(d.features[test])

    scores = {"ridge": out_of_fold(v, ridge), f"fine-tuned {args.blocks}": out_of_fold(v, tuned)}
    scores["mean of both"] = (normal_scores(scores["ridge"]) + normal_scores(scores[f"fine-tuned {args.blocks}"])) / 2
    quantiles = np.quantile(d.q_adv, np.linspace(0, 1, 1001))
    qualities = {"teacher": (d.q_adv * v.s_f).clip(0) ** 5, "s_f": v.s_f}
    for name, score in scores.items():  # normal scores back to q_adv's scale, as the student's head does
        q_adv = np.interp(ndtr(normal_scores(score)), np.linspace(0, 1, 1001), quantiles)
        qualities[name] = (q_adv * v.s_f).clip(0) ** 5
    print_table(v, qualities, args.bootstrap)


if __name__ == "__main__":
    main()
