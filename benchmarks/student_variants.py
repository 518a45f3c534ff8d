"""Which student v2 to ship: training choices compared on faces of people each fit did not see.

    python benchmarks/student_variants.py --model dlib [--labels runs/student/v2/labels_dlib.csv] [--thetas 0,0.5] [--pools view1,pool] [--bootstrap 100]

Validation, never the judging protocols: 5 folds over the people of the training labels
(benchmarks/student_pool.py, judged people already removed); each original face gets the
prediction of the fit on the other folds' people; then ERC AUC x1e3 at 10/20/40/80 % and EDC
pAUC x1e3 to 0.3 at FMR 1e-3 on all pairs among the original faces, the quality model's own
errors (its embedding is part of the features). Variants: the training faces (View 1 train
only, as student v1, or the whole pool) and the label refinement step theta
(faceqan.student.refine); rows for the teacher itself and s_f alone give the scale.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
import numpy as np

from faceqan.evaluation.evaluate import comparison_scores, evaluate
from faceqan.evaluation.protocols import paths_all_pairs
from faceqan.models import create_model
from faceqan.sinks import read_rows
from faceqan.student.distill import TrainingSet, read_labels, training_set
from faceqan.student.head import fit_head
from faceqan.student.refine import refine_labels

FOLDS = 5


def folds_by_person(groups: np.ndarray, seed: int = 0) -> np.ndarray:
    unique = np.unique(groups)
    fold_of = dict(zip(unique, np.random.default_rng(seed).permutation(unique.size) % FOLDS))
    return np.array([fold_of[g] for g in groups])


@dataclass
class Validation:
    """The training faces, their exact s_f, own-model embeddings, which are originals and of View 1 train, and folds by person."""

    data: TrainingSet
    s_f: np.ndarray
    embeddings: np.ndarray
    original: np.ndarray
    view1: np.ndarray
    fold: np.ndarray


def validation_data(model_name: str, model, labels_file: str, cache: str) -> Validation:
    data = training_set(read_labels([labels_file], model), model, cache, progress=False)
    flip = {row["path"]: float(row["flip_sim"]) for row in read_rows(labels_file) if row.get("status") == "ok" and str(row.get("face")) == "0"}
    dim = model.spec.embedding_size
    view1_paths = set(read_labels([f"benchmarks/student_labels/labels_{model_name}.csv"], model).paths)
    return Validation(
        data, np.array([flip[p] for p in data.paths]), data.features[:, -dim - 1 : -1], np.array(["/degraded" not in p for p in data.paths]),
        np.array([p in view1_paths for p in data.paths]), folds_by_person(data.groups),
    )  # fmt: skip


def out_of_fold(v: Validation, fit_predict, train_mask: np.ndarray | None = None) -> np.ndarray:
    """Each face's prediction from ``fit_predict(train_index, test_index)`` fitted on the other folds' people."""
    predicted = np.full(len(v.data.paths), np.nan)
    for k in range(FOLDS):
        train = (v.fold != k) & (True if train_mask is None else train_mask)
        predicted[v.fold == k] = fit_predict(np.flatnonzero(train), np.flatnonzero(v.fold == k))
    return predicted


def print_table(v: Validation, qualities: dict[str, np.ndarray], bootstrap: int = 0) -> None:
    """Each quality's figures on all pairs among the training originals; with ``bootstrap``, also
    each one's paired 95 % interval against s_f (method - s_f, below 0: better) over that many
    identity-grouped resamples (``qualities`` must hold an "s_f" entry)."""
    images = [p for p, keep in zip(v.data.paths, v.original) if keep]
    protocol = paths_all_pairs(images, "all pairs among the training originals")
    scores, valid = comparison_scores(protocol, dict(zip(images, v.embeddings[v.original])))
    assert valid.all()
    reference_first = {"s_f": qualities["s_f"], **qualities} if bootstrap else qualities  # differences are against the first
    results = {r.name: r for r in evaluate(protocol, scores, {k: q[v.original] for k, q in reference_first.items()}, edc_limit=0.3, resamples=bootstrap, random_seeds=0)}
    print(f"{len(images)} originals, {int(protocol.mated.sum())} mated pairs; ERC AUC x1e3 at 10/20/40/80, EDC pAUC to 0.3")
    for name in qualities:
        r = results[name].values
        print(f"{name:22s} " + " / ".join(f"{r[f'erc_auc@{c}']:.1f}" for c in (10, 20, 40, 80)) + f"  ({r['edc_pauc@30']:.1f})", flush=True)
    if bootstrap:
        print(f"paired intervals, method - s_f ({bootstrap} resamples over people; below 0: better than s_f) at 40 / 80 % (EDC)")
        for name in (k for k in qualities if k != "s_f"):
            d = results[name].differences
            print(f"{name:22s} " + " / ".join(f"[{d[c][0]:.1f}, {d[c][1]:.1f}]" for c in ("erc_auc@40", "erc_auc@80")) + f"  ([{d['edc_pauc@30'][0]:.1f}, {d['edc_pauc@30'][1]:.1f}])", flush=True)

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="dlib")
    parser.add_argument("--labels", default=None)
    parser.add_argument("--cache", default="runs/cache")
    parser.add_argument("--thetas", default="0,0.1,0.25,0.5")
    parser.add_argument("--pools", default="view1,pool", help="view1 (View 1's training faces) and / or pool (all)")
    parser.add_argument("--bootstrap", type=int, default=0, help="also paired intervals against s_f over this many identity-grouped resamples")
    args = parser.parse_args()
    model = create_model(args.model)
    v = validation_data(args.model, model, args.labels or f"runs/student/v2/labels_{args.model}.csv", args.cache)
    d = v.data
    print(f"{args.model}: {len(d.paths)} faces ({v.original.sum()} originals, {v.view1.sum()} of View 1 train), {np.unique(d.groups).size} people", flush=True)
    qualities: dict[str, np.ndarray] = {"teacher": (d.q_adv * v.s_f).clip(0) ** 5, "s_f": v.s_f}
    for pool, train_mask in [(name, mask) for name, mask in (("view1", v.view1), ("pool", None)) if name in args.pools.split(",")]:
        for theta in (float(t) for t in args.thetas.split(",")):
            target = refine_labels(d.q_adv, v.embeddings, d.groups, theta)

            def ridge(train: np.ndarray, test: np.ndarray) -> np.ndarray:
                return fit_head(d.features[train], target[train], d.groups[train]).predict(d.features[test])

            qualities[f"{pool} theta={theta:g}"] = (out_of_fold(v, ridge, train_mask) * v.s_f).clip(0) ** 5
    print_table(v, qualities, args.bootstrap)


if __name__ == "__main__":
    main()
