"""FaceQAN speed: our engine against a transcription of the official loop, in one process.

    python benchmarks/speed.py [--model dlib|sface|r100] [--images 8] [--device cpu] [--copies 10] [--steps 5] [--repeats 3]

Same model, same aligned images, same settings, same noise. Prints, per method, images per
second, seconds per image (medians of interleaved rounds), peak memory above the start, and the cost in forward-pass
equivalents (its time / one forward of the same images); checks that the engine's official
variant gives the official loop's scores (largest difference), and ends with
``speedup_vs_official_loop: X.XX`` (engine, official variant, over the transcribed loop).
``--model r100`` is an insightface IResNet-100 with random weights (for GPU timing). Like the
CLI, the process keeps freed memory in its heap (glibc; `--glibc-defaults` to compare), so on
the CPU the peak memory above the start mostly shows what the warm-up runs did not already hold.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

from faceqan.algorithm import FaceQAN, uniform_noise
from faceqan.allocator import keep_freed_memory
from faceqan.official_loop import official_quality
from faceqan.methods import FaceQANMethod

sys.path.insert(0, str(Path(__file__).parent))


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakMemory:
    """Peak memory while the block runs, above its start: CUDA allocations, or process RSS
    sampled every 5 ms on the CPU."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.peak = device, 0

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.start = torch.cuda.memory_allocated()
        else:
            self.start, self.running = rss_bytes(), True
            self.thread = threading.Thread(target=self._sample, daemon=True)
            self.thread.start()
        return self

    def _sample(self) -> None:
        while self.running:
            self.peak = max(self.peak, rss_bytes() - self.start)
            time.sleep(0.005)

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self.start
        else:
            self.running = False
            self.thread.join()


def load_model(name: str, device: torch.device):
    if name == "r100":
        from faceqan.models.iresnet import iresnet
        from faceqan.models.spec import FaceModel, arcface_spec

        torch.manual_seed(0)
        return FaceModel(iresnet("r100"), arcface_spec("iresnet100-random", "random init")).to(device).eval()
    from faceqan.models import create_model

    return create_model(name, str(device))


def aligned_images(model, count: int) -> torch.Tensor:
    """LFW faces aligned for the model (or the built-in sample when LFW is absent)."""
    from faceqan.faces.prepare import FacePreparer
    from faceqan.pipeline import chips_to_tensor

    preparer = FacePreparer(model.spec)
    from faceqan.shared_data import MissingData, lfw

    try:
        folder = lfw() / "images_deepfunneled"
    except MissingData:
        folder = None  # the demo faces stand in; the output names its source
    if folder is not None:
        paths = sorted(str(p) for p in folder.rglob("*.jpg"))[:: 37][: count * 2]
        chips = [f.chip for path in paths for f in preparer(path) if f.chip is not None][:count]
        source = "LFW"
    else:
        from faceqan.demo import degraded_samples

        samples = list(degraded_samples().values())
        chips = [f.chip for i in range(count) for f in preparer.from_array(str(i), samples[i % len(samples)]) if f.chip is not None]
        source = "built-in sample"
    print(f"images: {len(chips)} from {source}, {model.spec.input_size}x{model.spec.input_size}")
    return chips_to_tensor(chips)


def measure(run, device: torch.device) -> tuple[float, int, object]:
    """Seconds, peak memory above the start, and the result of one call of ``run``."""
    with PeakMemory(device) as memory:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = run()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    return seconds, memory.peak, result


def report(label: str, seconds: float, peak: int, images: int, forward_seconds: float | None = None) -> None:
    line = f"{label:<28} {images / seconds:8.2f} img/s  {seconds / images:8.4f} s/img  peak {peak / 2**20:8.1f} MiB"
    if forward_seconds:
        line += f"  {seconds / forward_seconds:7.1f} forward-equivalents"
    print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="dlib")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--eps", type=float, default=0.001)
    parser.add_argument("--batch-size", type=int, default=None, help="images per engine batch (default: all on GPU; on CPU the CLI's default for the model)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved timing rounds; medians are reported (default 3)")
    parser.add_argument("--glibc-defaults", action="store_true", help="leave glibc's allocator as it is (the CLI keeps freed memory: faceqan/allocator.py)")
    args = parser.parse_args()

    heap_kept = False if args.glibc_defaults else keep_freed_memory()
    device = torch.device(args.device)
    model = load_model(args.model, device)
    x = aligned_images(model, args.images).to(device)
    n = len(x)
    batch = args.batch_size or (n if device.type == "cuda" else FaceQANMethod(model).default_batch_size())
    print(f"model {args.model} on {device} ({torch.get_num_threads()} threads), k={args.copies}, l={args.steps}, eps={args.eps}, engine batch {batch}, freed memory kept in the heap: {heap_kept}")

    def forward_only():
        with torch.no_grad():
            return torch.cat([model(x[i : i + batch]) for i in range(0, n, batch)])

    forward_only()  # warm-up (allocator, kernels)
    forward_seconds, forward_peak, _ = measure(forward_only, device)
    report("one forward (no grad)", forward_seconds, forward_peak, n)

    noise = uniform_noise((args.copies, *x.shape[1:]), 0, device)  # every image's k patterns

    def official_loop():
        for p in model.parameters():
            p.requires_grad_(True)  # the official code builds parameter gradients too
        scores = [official_quality(model, (x[i] + 1) / 2, noise, args.eps, args.steps) for i in range(n)]
        for p in model.parameters():
            p.requires_grad_(False)
            p.grad = None
        return np.array(scores)

    def engine(variant: str):
        scorer = FaceQAN(model, args.eps, args.steps, args.copies, 5, variant, seed=0)
        return lambda: torch.cat([scorer(x[i : i + batch]).quality for i in range(0, n, batch)]).numpy()

    # Each run with its weights' layout: FaceQAN stores them NHWC, the official code runs them as loaded (NCHW).
    runs = {
        "official loop (transcribed)": (official_loop, torch.contiguous_format),
        "engine, variant official": (engine("official"), torch.channels_last),
        "engine, variant paper": (engine("paper"), torch.channels_last),
    }
    for run, weight_format in runs.values():
        model.to(memory_format=weight_format)
        run()  # warm-up (allocator, kernels)
    # Rounds interleave the three, so that a slow spell of a shared machine hits each alike.
    seconds: dict[str, list[float]] = {label: [] for label in runs}
    peaks = dict.fromkeys(runs, 0)
    results = {}
    for _ in range(args.repeats):
        for label, (run, weight_format) in runs.items():
            model.to(memory_format=weight_format)
            elapsed, peak, results[label] = measure(run, device)
            seconds[label].append(elapsed)
            peaks[label] = max(peaks[label], peak)
    print(f"median of {args.repeats} interleaved rounds:")
    for label in runs:
        report(label, float(np.median(seconds[label])), peaks[label], n, forward_seconds)
    loop, official = np.array(seconds["official loop (transcribed)"]), np.array(seconds["engine, variant official"])
    print(f"largest |official loop - engine official| score difference: {np.abs(results['official loop (transcribed)'] - results['engine, variant official']).max():.2e}")
    print(f"speedup per round: {', '.join(f'{r:.2f}' for r in loop / official)}")
    print(f"speedup_vs_official_loop: {np.median(loop) / np.median(official):.2f}")

if __name__ == "__main__":
    main()
