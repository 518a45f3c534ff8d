"""The students judged on people no student saw, with goals printed pass / fail.

    python benchmarks/judge_students.py [--student DIR] [--v2 DIR] [--v1 DIR] [--bootstrap 100] [--out runs/judge/students.md]

Protocols (all pairs among their images; identities = LFW names):
  A  LFW View 1's test images (pairsDevTest.txt; 1,549 images);
  B  benchmarks/protocols/lfw_unseen_pairs.txt (benchmarks/student_pool.py: every image of the
     LFW people in neither View 1 file with two images or more; 874 images, 293 people).
For each quality model (dlib, SFace) and each model's errors (model-specific and cross-model):
ERC AUC x1e3 at 10/20/40/80 % and EDC pAUC x1e3 at FMR 1e-3 to a discard of 0.3, bootstrap
95 % intervals over identities, and paired intervals (student - method; below 0: the student
better). Methods: the student judged (--student DIR/MODEL.pt, default the shipped ones), the
ridge student v2 (--v2 DIR/MODEL.pt, default benchmarks/students_v2/MODEL.pt where a later
student replaced it, else the shipped one; listed where it is not the one judged),
student v1 (--v1 DIR/MODEL.pt, default benchmarks/students_v1), FaceQAN (its scores in
benchmarks/view2_scores/, matched by LFW name), froq, s_f (flip), SER-FIQ, embedding norm, and
random. Qualities and embeddings are cached in --cache (shared with `faceqan evaluate`).
Goals: student - s_f below 0 at 40 and 80 % for both models with their own errors on both
protocols; student - teacher contains 0 or lies below it in every column; dlib's speed-up over
FaceQAN >= 30 (benchmarks/student_speed.py, run here unless --no-speed).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from faceqan.cache import ResultCache
from faceqan.embedding import EmbeddingMethod
from faceqan.evaluation.evaluate import cached_values, cached_values_of, comparison_scores, evaluate
from faceqan.evaluation.protocols import Protocol, all_pairs, read_lfw_pairs
from faceqan.evaluation.run import _cache_setting
from faceqan.faces.prepare import FacePreparer
from faceqan.methods import create_method
from faceqan.models import create_model
from faceqan.shared_data import given_or_shared_lfw
from faceqan.sinks import read_rows
from faceqan.student.files import builtin_student

HERE = Path(__file__).parent
MODELS = ("dlib", "sface")
COLUMNS = ("erc_auc@10", "erc_auc@20", "erc_auc@40", "erc_auc@80", "edc_pauc@30")  # edc_limit 0.3 below
HEADERS = ("ERC@10", "ERC@20", "ERC@40", "ERC@80", "EDC pAUC to 0.3")
BASELINES = ("froq", "flip", "serfiq", "embedding_norm")


def protocols(lfw: Path) -> dict[str, Protocol]:
    root = lfw / "images_deepfunneled"
    return {
        "A": all_pairs(read_lfw_pairs(lfw / "pairsDevTest.txt", root), "A: all pairs among LFW View 1's test images"),
        "B": all_pairs(read_lfw_pairs(HERE / "protocols" / "lfw_unseen_pairs.txt", root), "B: all pairs among the unseen LFW people's images"),
    }


def lfw_key(path: str) -> str:
    return "/".join(Path(path).parts[-2:])


def faceqan_scores(model: str) -> dict[str, float]:
    """FaceQAN's Q of LFW images by Name/Name_NNNN.jpg, from the committed score files (View 2's
    and the rest of pairsDevTest.txt's in view2_scores/; protocol B's in the extra pool's labels)."""
    found: dict[str, float] = {}
    files = sorted((HERE / "view2_scores").glob(f"{model}_*.csv")) + [HERE / "student_labels" / f"labels_{model}_extra.csv"]
    for file in files:
        for row in read_rows(file):
            if row.get("status") == "ok" and str(row.get("face")) == "0":
                found.setdefault(lfw_key(row["path"]), float(row["quality"]))
    return found


def qualities_for(paths: list[str], model_name: str, model, students: dict[str, Path], cache: str) -> dict[str, np.ndarray]:
    """Each method's quality of each path; ``students``: name -> file, the judged student first."""
    methods = {**{name: create_method("faceqan-student", model, student=str(file)) for name, file in students.items()}, **{name: create_method(name, model) for name in BASELINES}}
    jobs = [(m, ResultCache(cache, _cache_setting(m.name, model_name, model, "refined", m.options()))) for m in methods.values()]
    all_rows = cached_values_of(paths, FacePreparer(model.spec, landmarks="refined"), jobs, max(m.default_batch_size() for m in methods.values()), progress=False)
    values = {}
    for (name, method), rows in zip(methods.items(), all_rows):
        column = next(iter(method.evaluation_columns().values()))
        values[name] = np.array([(r or {}).get(column, np.nan) if (r or {}).get("status") == "ok" else np.nan for r in map(rows.get, paths)], float)
    teacher = faceqan_scores(model_name)
    values["FaceQAN"] = np.array([teacher.get(lfw_key(p), np.nan) for p in paths])
    if np.isnan(values["FaceQAN"]).any():
        missing = [p for p, v in zip(paths, values["FaceQAN"]) if np.isnan(v)]
        print(f"  {model_name}: {len(missing)} images without a FaceQAN score (first {missing[0]}); they are rejected first", file=sys.stderr)
    order = [*students, "FaceQAN", *BASELINES]  # the judged student first: the paired intervals are against it
    return {name: values[name] for name in order}


def shipped_v2(model_name: str) -> Path | None:
    """The ridge v2: where it went when a later student replaced it, else the shipped student."""
    kept = HERE / "students_v2" / f"{model_name}.pt"
    return kept if kept.exists() else builtin_student(model_name)


def students_of(args: argparse.Namespace, model_name: str) -> dict[str, Path]:
    """The judged student, then the earlier ones where they are other files."""
    judged = Path(args.student) / f"{model_name}.pt" if args.student else builtin_student(model_name)
    earlier = {"student v2 (ridge)": Path(args.v2) / f"{model_name}.pt" if args.v2 else shipped_v2(model_name), "student v1": Path(args.v1) / f"{model_name}.pt"}
    return {"student": judged, **{name: file for name, file in earlier.items() if file is not None and file.exists() and file.read_bytes() != judged.read_bytes()}}


def interval(pair: tuple[float, float]) -> str:
    return f"[{pair[0]:.1f}, {pair[1]:.1f}]"


def judge(args: argparse.Namespace) -> tuple[list[str], list[tuple[str, bool]], list[str]]:
    lfw = given_or_shared_lfw(args.lfw)
    models = {name: create_model(name) for name in MODELS}
    lines: list[str] = []
    goals: list[tuple[str, bool]] = []
    references: list[str] = []
    for key, protocol in protocols(lfw).items():
        paths = protocol.image_paths()
        mated = int(protocol.mated.sum())
        lines += [f"## Protocol {protocol.name}", "", f"{len(paths)} images, {protocol.identity_count} people, {mated} mated and {len(protocol) - mated} non-mated pairs.", ""]
        embeddings = {}
        for name, model in models.items():
            method = EmbeddingMethod(model)
            cache = ResultCache(args.cache, _cache_setting("embedding", name, model, "refined", {}))
            rows = cached_values(paths, FacePreparer(model.spec, landmarks="refined"), method, cache, method.default_batch_size(), progress=False)
            embeddings[name] = {p: np.asarray(r["embedding"]) if (r or {}).get("status") == "ok" else None for p, r in rows.items()}
        for quality_model in MODELS:
            qualities = qualities_for(paths, quality_model, models[quality_model], students_of(args, quality_model), args.cache)
            for errors in MODELS:
                scores, valid = comparison_scores(protocol, embeddings[errors])
                kept = protocol.subset(valid)
                results = evaluate(kept, scores[valid], qualities, edc_limit=0.3, resamples=args.bootstrap)
                title = f"{quality_model} quality, {errors}'s errors" + ("" if valid.all() else f" ({int((~valid).sum())} pairs without a face dropped)")
                section = len(lines)
                lines += [f"### {key}: {title}", "", "| method | " + " | ".join(HEADERS) + " |", "|---|" + "---|" * len(HEADERS)]
                for result in results:
                    cells = [f"{result.values[c]:.1f}" + (f" {interval(result.intervals[c])}" if c in result.intervals else "") for c in COLUMNS]
                    lines.append(f"| {result.name} | " + " | ".join(cells) + " |")
                lines += ["", "Paired intervals, student - method (below 0: the student better):", "", "| method | " + " | ".join(HEADERS) + " |", "|---|" + "---|" * len(HEADERS)]
                for result in results[1:]:
                    if result.differences:  # method - student; student - method is its negation
                        minus = {c: (-result.differences[c][1], -result.differences[c][0]) for c in COLUMNS}
                        lines.append(f"| {result.name} | " + " | ".join(interval(minus[c]) for c in COLUMNS) + " |")
                        if errors == quality_model and result.name == "flip":
                            for c in ("erc_auc@40", "erc_auc@80"):
                                goals.append((f"{key} {quality_model}: the student beats s_f at {c[-2:]} % ({interval(minus[c])} below 0)", minus[c][1] < 0))
                        if result.name == "FaceQAN":
                            worse = [c for c in COLUMNS if minus[c][0] > 0]
                            goals.append((f"{key} {quality_model} quality, {errors}'s errors: the student no worse than FaceQAN in every column" + (f" (worse: {', '.join(worse)})" if worse else ""), not worse))
                if errors == quality_model and args.bootstrap:  # how far the teacher itself gets against s_f, for scale
                    flip = evaluate(kept, scores[valid], {k: qualities[k] for k in ("FaceQAN", "flip")}, edc_limit=0.3, resamples=args.bootstrap, random_seeds=0)[1]
                    teacher_minus = {c: (-flip.differences[c][1], -flip.differences[c][0]) for c in ("erc_auc@40", "erc_auc@80")}
                    references.append(f"{key} {quality_model}: FaceQAN - s_f at 40 % {interval(teacher_minus['erc_auc@40'])}, at 80 % {interval(teacher_minus['erc_auc@80'])}")
                    lines += ["", f"For scale, the teacher against s_f (FaceQAN - s_f, below 0: FaceQAN better): {references[-1].split(': ', 1)[1]}."]
                lines.append("")
                print("\n".join(lines[section:]), flush=True)
    return lines, goals, references


def speedup() -> float:
    result = subprocess.run([sys.executable, str(HERE / "student_speed.py"), "--model", "dlib", "--images", "16", "--warmup", "5", "--repeats", "3"],
                            capture_output=True, text=True, check=True)  # fmt: skip
    return float(re.search(r"student_speedup_vs_faceqan: ([0-9.]+)", result.stdout).group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lfw", default=None)
    parser.add_argument("--student", default=None, help="folder of MODEL.pt student files to judge (default: the shipped students)")
    parser.add_argument("--v2", default=None, help="folder of the ridge students v2 to compare with (default: benchmarks/students_v2/MODEL.pt where it exists, else the shipped one)")
    parser.add_argument("--v1", default=str(HERE / "students_v1"), help="folder of the students v1 to compare with")
    parser.add_argument("--bootstrap", type=int, default=100)
    parser.add_argument("--cache", default="runs/cache")
    parser.add_argument("--out", default="runs/judge/students.md")
    parser.add_argument("--no-speed", action="store_true")
    args = parser.parse_args()
    lines, goals, references = judge(args)
    if not args.no_speed:
        value = speedup()
        goals.append((f"dlib: speed-up over FaceQAN {value:.1f} >= 30", value >= 30))
    lines += ["## Goals", ""] + [f"- {'PASS' if ok else 'FAIL'}: {text}" for text, ok in goals]
    lines += ["", "For scale (not goals): the teacher's own paired intervals against s_f, own errors.", ""] + [f"- {text}" for text in references]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines[-len(goals) - len(references) - 5 :]))
    print(f"{sum(ok for _, ok in goals)} of {len(goals)} goals met -> {args.out}")


if __name__ == "__main__":
    main()
