"""LFW View 2 verification accuracy of a built-in model with faceqan's detection + alignment.

    python benchmarks/lfw_accuracy.py --model dlib [--lfw ../shared/data/lfw]
    python benchmarks/lfw_accuracy.py --model sface --aligned-root ../shared/data/lfw_aligned_112/data

Prints 10-fold accuracy (threshold tuned on the other nine folds) on cosine similarity,
and, for dlib, its own rule (Euclidean distance < 0.6). A pair with an image in which no
face was found counts as an error. ``--aligned-root`` reads pre-aligned copies of the images
(``ROOT/<Name>/<file>``) instead, skipping detection: the gap between the two runs is what
our detection + alignment costs.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from faceqan.embedding import embed_paths
from faceqan.evaluation.protocols import read_lfw_pairs
from faceqan.evaluation.verification import fixed_threshold_accuracy, fold_accuracy
from faceqan.faces.prepare import FacePreparer
from faceqan.models import create_model
from faceqan.shared_data import given_or_shared_lfw



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="dlib")
    parser.add_argument("--lfw", default=None, help="LFW folder (default: the shared data, $FACEQAN_SHARED)")
    parser.add_argument("--pairs", default="pairs.txt")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--aligned-root", default=None, help="folder of pre-aligned copies, <Name>/<file> (skips detection)")
    args = parser.parse_args()

    lfw = given_or_shared_lfw(args.lfw)
    protocol = read_lfw_pairs(lfw / args.pairs)
    paths = protocol.images
    if args.aligned_root:
        paths = [str(Path(args.aligned_root) / Path(p).parent.name / Path(p).name) for p in paths]
    model = create_model(args.model)
    start = time.perf_counter()
    embeddings, errors = embed_paths(paths, model, FacePreparer(model.spec, aligned=bool(args.aligned_root)), args.batch_size)
    seconds = time.perf_counter() - start
    print(f"model {args.model}: {len(paths)} images, {len(errors)} without a face, {seconds / len(paths) * 1000:.1f} ms per image")
    for path, error in list(errors.items())[:10]:
        print(f"  {path}: {error}")

    mated, folds = protocol.mated, protocol.fold
    pairs = [(paths[a], paths[b]) for a, b in zip(protocol.first, protocol.second)]
    found = np.array([a in embeddings and b in embeddings for a, b in pairs])

    def pair_scores(similarity) -> np.ndarray:
        # A pair missing an image gets the score that makes it wrong whatever the threshold.
        worst = np.where(mated, -np.inf, np.inf)
        return np.array([similarity(embeddings[a], embeddings[b]) if ok else w for (a, b), ok, w in zip(pairs, found, worst)])

    cosine = pair_scores(lambda a, b: float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)))
    mean, std = fold_accuracy(cosine, mated, folds)
    print(f"pairs {len(protocol)}, {int((~found).sum())} with an image without a face (counted as errors)")
    print(f"accuracy (cosine, threshold tuned on the other folds): {mean * 100:.2f}% +- {std * 100:.2f}")
    distance = pair_scores(lambda a, b: -float(np.linalg.norm(a - b)))
    mean_d, std_d = fold_accuracy(distance, mated, folds)
    print(f"accuracy (euclidean, threshold tuned on the other folds): {mean_d * 100:.2f}% +- {std_d * 100:.2f}")
    if args.model == "dlib":
        print(f"accuracy (dlib rule: distance < 0.6): {fixed_threshold_accuracy(distance, mated, -0.6) * 100:.2f}%")


if __name__ == "__main__":
    main()
