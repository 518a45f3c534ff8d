"""Do FaceQAN's scores depend on which CPU kernels ran? Score the same faces under several
kernel levels, each in its own process, and compare.

    python benchmarks/portability.py [--model dlib] [--images 200] [--levels sse41 avx2 avx512] [--out FILE.json]

A level caps every library that picks kernels by CPU at start-up: ATen (ATEN_CPU_CAPABILITY),
oneDNN's convolutions (ONEDNN_MAX_CPU_ISA) and OpenCV's detection and warping
(OPENCV_CPU_DISABLE); levels this CPU lacks are skipped. The faces: the demo's seven samples
and the first ``--images`` LFW View 1 training images (detection and alignment included, the
model's default settings). Prints per pair of levels the largest |difference| in Q and
whether the ranking is the same, and ends with ``max_abs_diff_q: X`` and a pass / fail line
for the goal (within 1e-3, same ranking).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from itertools import combinations
from pathlib import Path

import numpy as np

LEVELS: dict[str, dict[str, str]] = {
    "sse41": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "OPENCV_CPU_DISABLE": "AVX512F,AVX2,FMA3,FP16,AVX"},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "OPENCV_CPU_DISABLE": "AVX512F"},
    "avx512": {"ATEN_CPU_CAPABILITY": "avx512", "ONEDNN_MAX_CPU_ISA": "ALL", "OPENCV_CPU_DISABLE": ""},
}
CPU_FLAGS = {"sse41": "sse4_1", "avx2": "avx2", "avx512": "avx512f"}
GOAL = 1e-3


def supported_levels() -> list[str]:
    flags = Path("/proc/cpuinfo").read_text().split() if Path("/proc/cpuinfo").exists() else []
    return [level for level, flag in CPU_FLAGS.items() if flag in flags]


def lfw_images(root: Path, count: int) -> list[str]:
    """The first ``count`` images of LFW View 1's training list."""
    names = (root / "pairsDevTrain-images.txt").read_text().split("\n")
    paths = []
    for line in names[:count]:
        person, number = line.split()
        paths.append(str(root / "images_deepfunneled" / person / f"{person}_{int(number):04d}.jpg"))
    return paths


def worker(model_name: str, paths: list[str], out: str) -> None:
    """Score the demo samples and ``paths`` in this process; write {name: quality} as JSON."""
    import faceqan
    from faceqan.demo import demo_rows

    model = faceqan.create_model(model_name)
    rows = demo_rows(model) + faceqan.score_paths(paths, model)
    Path(out).write_text(json.dumps({row["path"]: row.get("quality") for row in rows}))


def score_at(level: str, model: str, paths: list[str]) -> dict[str, float | None]:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "scores.json"
        listing = Path(folder) / "paths.json"
        listing.write_text(json.dumps(paths))
        env = {**os.environ, **LEVELS[level]}
        command = [sys.executable, __file__, "--worker", str(listing), "--model", model, "--out", str(out)]
        subprocess.run(command, env=env, check=True)
        return json.loads(out.read_text())


def compare(scores: dict[str, dict[str, float | None]]) -> float:
    """Print each pair of levels' largest |dQ| and whether the ranking is the same; return the largest."""
    worst = 0.0
    for a, b in combinations(scores, 2):
        names = [n for n in scores[a] if scores[a][n] is not None and scores[b].get(n) is not None]
        qa, qb = (np.array([scores[level][n] for n in names]) for level in (a, b))
        missing = len(scores[a]) - len(names)
        difference = float(np.abs(qa - qb).max())
        same_order = bool((np.argsort(-qa, kind="stable") == np.argsort(-qb, kind="stable")).all())
        swaps = int(np.sum(np.sign(np.subtract.outer(qa, qa)) != np.sign(np.subtract.outer(qb, qb))) // 2)
        print(f"{a} vs {b}: {len(names)} faces ({missing} without a score), largest |dQ| {difference:.2e}, "
              f"mean |dQ| {np.abs(qa - qb).mean():.2e}, same ranking: {same_order} ({swaps} swapped pairs)")  # fmt: skip
        worst = max(worst, difference)
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="dlib")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--levels", nargs="+", default=None, help="default: every level this CPU has")
    parser.add_argument("--lfw", type=Path, default=None, help="LFW folder (default: the shared data, $FACEQAN_SHARED)")
    parser.add_argument("--out", default=None, help="also write every level's scores here (JSON)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.model, json.loads(Path(args.worker).read_text()), args.out)
    levels = args.levels or supported_levels()
    if args.images:
        from faceqan.shared_data import given_or_shared_lfw

        paths = lfw_images(given_or_shared_lfw(args.lfw), args.images)
    else:
        paths = []
    print(f"model {args.model}, demo samples + {len(paths)} LFW images, levels {', '.join(levels)}", flush=True)
    scores = {level: score_at(level, args.model, paths) for level in levels}
    if args.out:
        Path(args.out).write_text(json.dumps(scores))
    worst = compare(scores)
    print(f"max_abs_diff_q: {worst:.2e}")
    print(f"goal (|dQ| <= {GOAL:g}): {'pass' if worst <= GOAL else 'FAIL'}")


if __name__ == "__main__":
    main()
