"""Would a fine-tuned student (option a) earn its file format? It is judged as the shipped
students are, before faceqan can ship one.

    python benchmarks/judge_finetuned.py [--model dlib] [--blocks 3] [--epochs 3] [--refine-labels 0.5] [--bootstrap 100]

The last ``--blocks`` residual blocks and a linear head are fine-tuned on all the student's
training faces (benchmarks/student_finetune.py's recipe, seeded, on the labels refined by
``--refine-labels``); its output is read as the normal score of q_adv's rank and mapped through
the teacher's q_adv quantiles, as the ridge student's head does; Q = max(q_adv * s_f, 0)^5 with
the exact s_f. Judged on protocols A and B (benchmarks/judge_students.py) with the model's own
errors and the other model's, beside the shipped student v2, FaceQAN and s_f: ERC AUC x1e3 at 10/20/40/80 %, EDC pAUC
to 0.3, 100 identity-grouped bootstrap resamples, paired intervals (fine-tuned - method).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from scipy.special import ndtr

from faceqan.cache import ResultCache
from faceqan.embedding import EmbeddingMethod
from faceqan.evaluation.evaluate import cached_values, cached_values_of, comparison_scores, evaluate
from faceqan.evaluation.run import _cache_setting
from faceqan.faces.prepare import FacePreparer
from faceqan.methods import create_method
from faceqan.models import create_model
from faceqan.pipeline import score_stream
from faceqan.shared_data import given_or_shared_lfw
from faceqan.student.files import builtin_student
from faceqan.student.head import normal_scores
from faceqan.student.refine import refine_labels

from judge_students import COLUMNS, HEADERS, MODELS, faceqan_scores, interval, lfw_key, protocols
from student_finetune import TailInput, finetune, tail_inputs
from student_variants import validation_data


def protocol_tail_inputs(paths: list[str], model, block, file: Path) -> np.ndarray:
    """Tail inputs of a protocol's images (NaN rows where no face was found), cached in ``file``."""
    if file.exists():
        return np.load(file)
    rows = {}
    for batch in score_stream(paths, FacePreparer(model.spec, landmarks="refined"), TailInput(model, block), 32):
        rows.update({row["path"]: row["tail_input"] for row in batch if row["face"] == 0 and row["status"] == "ok"})
    width = len(next(iter(rows.values())))
    values = np.array([rows.get(p, [np.nan] * width) for p in paths], np.float32)
    file.parent.mkdir(parents=True, exist_ok=True)
    np.save(file, values)
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="dlib")
    parser.add_argument("--blocks", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--refine-labels", type=float, default=0.5, metavar="THETA")
    parser.add_argument("--bootstrap", type=int, default=100)
    parser.add_argument("--student", default=None, help="the ridge student v2 to compare with (default: the shipped one)")
    parser.add_argument("--lfw", default=None)
    parser.add_argument("--cache", default="runs/cache")
    args = parser.parse_args()
    lfw = given_or_shared_lfw(args.lfw)
    torch.set_num_threads(2)
    model = create_model(args.model)
    v = validation_data(args.model, model, f"runs/student/v2/labels_{args.model}.csv", args.cache)
    d = v.data
    blocks = model.network.blocks
    split = len(blocks) - args.blocks
    inputs = tail_inputs(d.paths, model, blocks[split - 1], Path(f"runs/student/v2/tail_input_{args.model}_{split}.npy"))
    seen: list[torch.Tensor] = []
    handle = blocks[split - 1].register_forward_hook(lambda _m, _i, out: seen.append(out))
    with torch.no_grad():
        model(torch.zeros(1, 3, model.spec.input_size, model.spec.input_size))
    handle.remove()
    probe_shape = seen[0].shape[1:]
    target = refine_labels(d.q_adv, v.embeddings, d.groups, args.refine_labels)
    template = blocks[split:]
    tail = finetune(torch.from_numpy(inputs).view(-1, *probe_shape), torch.from_numpy(normal_scores(target)).float(), template, int(template[-1].conv2.out_channels), args.epochs)
    print(f"{args.model}: fine-tuned {args.blocks} blocks on {len(d.paths)} faces, labels refined {args.refine_labels:g}", flush=True)
    quantiles = np.quantile(d.q_adv, np.linspace(0, 1, 1001))

    student = create_method("faceqan-student", model, student=args.student or str(builtin_student(args.model)))
    flip = create_method("flip", model)
    teacher = faceqan_scores(args.model)
    for key, protocol in protocols(lfw).items():
        paths = protocol.image_paths()
        x = protocol_tail_inputs(paths, model, blocks[split - 1], Path(f"runs/judge/tail_input_{key}_{args.model}_{split}.npy"))
        with torch.no_grad():
            score = tail(torch.from_numpy(np.nan_to_num(x)).view(-1, *probe_shape)).double().numpy()
        q_adv = np.interp(ndtr(score), np.linspace(0, 1, 1001), quantiles)
        jobs = [(m, ResultCache(args.cache, _cache_setting(m.name, args.model, model, "refined", m.options()))) for m in (student, flip)]
        rows = cached_values_of(paths, FacePreparer(model.spec, landmarks="refined"), jobs, 16, progress=False)
        values = [np.array([(r or {}).get("quality", np.nan) if (r or {}).get("status") == "ok" else np.nan for r in map(found.get, paths)]) for found in rows]
        s_f = values[1]
        tuned = np.where(np.isnan(x).any(axis=1), np.nan, (q_adv * s_f).clip(0) ** 5)
        qualities = {"fine-tuned": tuned, "student v2 (ridge)": values[0], "FaceQAN": np.array([teacher.get(lfw_key(p), np.nan) for p in paths]), "flip": s_f}
        for errors in MODELS:  # the model's own errors, then the other model's
            comparer = model if errors == args.model else create_model(errors)
            embedder = EmbeddingMethod(comparer)
            cache = ResultCache(args.cache, _cache_setting("embedding", errors, comparer, "refined", {}))
            found = cached_values(paths, FacePreparer(comparer.spec, landmarks="refined"), embedder, cache, embedder.default_batch_size(), progress=False)
            scores, valid = comparison_scores(protocol, {p: np.asarray(r["embedding"]) if (r or {}).get("status") == "ok" else None for p, r in found.items()})
            results = evaluate(protocol.subset(valid), scores[valid], qualities, edc_limit=0.3, resamples=args.bootstrap)
            print(f"\n### {key}: {args.model} quality, {errors}'s errors\n\n| method | " + " | ".join(HEADERS) + " |\n|---|" + "---|" * len(HEADERS))
            for result in results:
                print(f"| {result.name} | " + " | ".join(f"{result.values[c]:.1f}" + (f" {interval(result.intervals[c])}" if c in result.intervals else "") for c in COLUMNS) + " |")
            print("\nPaired intervals, fine-tuned - method (below 0: fine-tuned better):\n\n| method | " + " | ".join(HEADERS) + " |\n|---|" + "---|" * len(HEADERS))
            for result in results[1:]:
                if result.differences:
                    print(f"| {result.name} | " + " | ".join(interval((-result.differences[c][1], -result.differences[c][0])) for c in COLUMNS) + " |", flush=True)

if __name__ == "__main__":
    main()
