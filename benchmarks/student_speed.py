"""The student against its teacher, in one process: seconds per aligned face.

    python benchmarks/student_speed.py [--model dlib] [--student FILE] [--images 8] [--repeats 3] [--warmup 1] [--device cpu]

Same model, same aligned LFW faces (detection excluded: both methods share it), each method
at its default batch size, untimed warm-up rounds, then interleaved rounds; medians. (SFace's
student needs about five full rounds before its time settles: 185, 47, 41, 50, 31, 19, 20 ms.)
With onnxruntime installed the student also runs as its ONNX export (`faceqan export`), same
faces and batches, ``student (onnxruntime)``. Ends with ``student_speedup_vs_faceqan: X``
(FaceQAN's seconds per face over the torch student's).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

import faceqan
from faceqan.allocator import keep_freed_memory

sys.path.insert(0, str(Path(__file__).parent))
from speed import aligned_images  # noqa: E402


def seconds_per_face(method, faces: torch.Tensor) -> float:
    batch = method.default_batch_size()
    start = time.perf_counter()
    for i in range(0, faces.shape[0], batch):
        method(faces[i : i + batch])
    return (time.perf_counter() - start) / faces.shape[0]


class OnnxStudent:
    """The student's ONNX export run by onnxruntime, called like a method on a batch of chips."""

    def __init__(self, method, folder: str) -> None:
        import onnxruntime

        from faceqan.student.export import export_student

        self.batch = method.default_batch_size()
        self.session = onnxruntime.InferenceSession(str(export_student(method, Path(folder) / "student.onnx")))

    def default_batch_size(self) -> int:
        return self.batch

    def __call__(self, faces: torch.Tensor):
        return self.session.run(["quality"], {"chips": faces.cpu().numpy()})[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="dlib")
    parser.add_argument("--student", default=None, help="student file (default: the one shipped for the model)")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds of all the faces per method first")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    keep_freed_memory()
    model = faceqan.create_model(args.model, args.device)
    faces = aligned_images(model, args.images).to(args.device)
    methods = {"faceqan": faceqan.create_method("faceqan", model), "student": faceqan.create_method("faceqan-student", model, student=args.student)}
    methods["froq"] = faceqan.create_method("froq", model)  # one pass, no mirror: the training-free peer
    try:
        with tempfile.TemporaryDirectory() as folder:  # the session holds the graph once made
            methods["student (onnxruntime)"] = OnnxStudent(methods["student"], folder)
    except ImportError:
        print("onnxruntime is not installed: the ONNX student is left out")
    for method in methods.values():
        for _ in range(args.warmup):
            seconds_per_face(method, faces)
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(args.repeats):
        for name, method in methods.items():
            times[name].append(seconds_per_face(method, faces))
    median = {name: statistics.median(values) for name, values in times.items()}
    print(f"model {args.model} on {args.device}, {args.images} aligned faces, {args.warmup} warm-up and {args.repeats} interleaved rounds ({torch.get_num_threads()} threads)")
    for name, value in median.items():
        print(f"{name}: {value * 1000:.1f} ms per face (rounds: {', '.join(f'{v * 1000:.1f}' for v in times[name])})")
    print(f"student_speedup_vs_faceqan: {median['faceqan'] / median['student']:.1f}")


if __name__ == "__main__":
    main()
