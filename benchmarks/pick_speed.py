"""Frames per second of `faceqan pick` on 640x480 clips with one and with three faces, and where
the time goes (detect, refine landmarks, align, score, embed for tracking, decode and the rest).

    python benchmarks/pick_speed.py [--frames 100] [--frame-step 2] [--model dlib] [--method faceqan-student]

The clips are made by faceqan.bestshots.synthetic from LFW photos (shared data). fps counts every
frame of the clip (those skipped by --frame-step too): the rate of a camera it keeps up with.
Goal: at least 25 fps with --frame-step 2 on 2 CPU cores, dlib's student. Exit 1 if missed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import torch

from faceqan.bestshots import FrameSource, Picker, TrackingSettings, pick_source
from faceqan.bestshots.synthetic import make_clip
from faceqan.faces import detect, prepare
from faceqan.faces.prepare import FacePreparer
from faceqan.methods import create_method
from faceqan.models import create_model
from faceqan.shared_data import lfw as shared_lfw, require

PEOPLE = ("Abdullah_Gul/Abdullah_Gul_0013.jpg", "Colin_Powell/Colin_Powell_0038.jpg", "George_W_Bush/George_W_Bush_0007.jpg")
GOAL_FPS = 25.0


@contextmanager
def timed(seconds: dict[str, float]):
    """While open, the stages' functions add their time to ``seconds``."""
    patches = [
        (detect.YuNetDetector, "detect", "detect (YuNet)"),
        (detect.YuNetDetector, "refine_landmarks", "refine landmarks (best-shot candidates)"),
        (prepare, "align_face", "align"),
        (Picker, "_score", "score (quality method)"),
        (Picker, "_embeddings", "embed (tracking; methods that give no embedding)"),
        (FrameSource, "_checked_rgb", "convert (BGR -> RGB)"),
    ]
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]

    def wrap(function, label):
        def timed_call(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                seconds[label] += time.perf_counter() - start

        return timed_call

    for (owner, name, label), (_, _, function) in zip(patches, originals):
        setattr(owner, name, wrap(function, label))
    try:
        yield
    finally:
        for owner, name, function in originals:
            setattr(owner, name, function)


def run(clip: Path, frames: int, args, model, method) -> tuple[float, dict[str, float], int]:
    seconds: dict[str, float] = defaultdict(float)
    preparer = FacePreparer(model.spec, faces="all", landmarks=args.landmarks)
    picker = Picker(str(clip), model, method, preparer, TrackingSettings.for_model(args.model))
    with timed(seconds):
        start = time.perf_counter()
        tracks = list(pick_source(FrameSource(str(clip), args.frame_step), picker))
        wall = time.perf_counter() - start
    seconds["decode and the rest"] = wall - sum(seconds.values())
    return frames / wall, seconds, len(tracks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--frame-step", type=int, default=2)
    parser.add_argument("--model", default="dlib")
    parser.add_argument("--method", default="faceqan-student")
    parser.add_argument("--landmarks", default="refined", choices=("refined", "single"))
    args = parser.parse_args()
    lfw = require(shared_lfw)
    model = create_model(args.model)
    method = create_method(args.method, model)
    print(f"faceqan pick speed: {args.model} {args.method}, 640x480, {args.frames} frames, --frame-step {args.frame_step}, {args.landmarks} landmarks, torch threads {torch.get_num_threads()}")
    missed = False
    with tempfile.TemporaryDirectory() as folder:
        for people in (1, 3):
            clip = Path(folder) / f"clip{people}.avi"
            make_clip(clip, [lfw / "images_deepfunneled" / name for name in PEOPLE[:people]], frames=args.frames, seed=people)
            run(clip, args.frames, args, model, method)  # warm-up: first calls build kernels and caches
            fps, seconds, tracks = run(clip, args.frames, args, model, method)
            total = sum(seconds.values())
            parts = ", ".join(f"{label} {1000 * value / args.frames * args.frame_step:.1f} ms ({100 * value / total:.0f} %)" for label, value in seconds.items())
            verdict = "pass" if fps >= GOAL_FPS else "MISSED"
            missed |= fps < GOAL_FPS
            print(f"{people} face(s): {fps:.1f} fps ({tracks} tracks) [goal >= {GOAL_FPS:g}: {verdict}]; per looked-at frame: {parts}")
    return 1 if missed and args.frame_step == 2 and args.method == "faceqan-student" and args.landmarks == "refined" else 0


if __name__ == "__main__":
    raise SystemExit(main())
