"""The ray engine against the local engine, in one run: images per second and the driver's memory.

    python benchmarks/ray_scaling.py [--images 40] [--rss-images 40 400] [--model dlib]

1. Throughput on the same LFW photos (detection, alignment and FaceQAN at the model's
   defaults): the local engine (model loading included), then on one local Ray (started once,
   not timed) a pool of 1 actor and of 2 actors (actor start-up included: the price of a run).
   Ends with ``ray_overhead_vs_local: X`` = local images/s over the best Ray images/s.
2. The driver's peak RSS (VmHWM) for a ``faceqan score --engine ray`` run of each of
   ``--rss-images`` photos, in a child process each, with a cheap method (sharpness): the
   driver streams, so it should not grow with the number of images.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path



def lfw_photos(count: int) -> list[str]:
    from faceqan.shared_data import lfw, require

    folder = require(lfw) / "images_deepfunneled"
    photos = sorted(str(p) for p in folder.rglob("*.jpg"))
    if len(photos) < count:
        sys.exit(f"error: need {count} LFW photos under {folder}, found {len(photos)}")
    return photos[:: max(1, len(photos) // count)][:count]


def local_rate(photos: list[str], model_name: str) -> float:
    from faceqan.faces.prepare import FacePreparer
    from faceqan.methods import create_method
    from faceqan.models import create_model
    from faceqan.pipeline import score_stream

    start = time.perf_counter()
    model = create_model(model_name)
    method = create_method("faceqan", model)
    rows = [row for batch in score_stream(photos, FacePreparer(model.spec), method, method.default_batch_size()) for row in batch]
    assert sum(row["status"] == "ok" for row in rows) >= 0.9 * len(photos)
    return len(photos) / (time.perf_counter() - start)


def ray_rate(photos: list[str], model_name: str, actors: int) -> float:
    from faceqan.distributed import ScoringJob, score, write

    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        sink = write(score(photos, ScoringJob(model_name), actors=actors), folder)
        seconds = time.perf_counter() - start
    assert sink.statuses["ok"] >= 0.9 * len(photos)
    return len(photos) / seconds


def driver_peak_rss_mib(photos: list[str]) -> float:
    """Run the CLI's ray engine in a child that reports its own peak RSS."""
    with tempfile.TemporaryDirectory() as folder:
        listing = Path(folder) / "photos.txt"
        listing.write_text("\n".join(photos) + "\n")
        code = (
            "import sys; from faceqan.cli import main; code = main(sys.argv[1:]); "
            "print('VmHWM', [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0]); sys.exit(code)"
        )
        args = [str(listing), "-o", f"{folder}/out", "--engine", "ray", "--method", "sharpness", "--quiet"]
        result = subprocess.run([sys.executable, "-c", code, "score", *args], capture_output=True, text=True)
    line = next((line for line in result.stdout.splitlines() if line.startswith("VmHWM")), None)
    if result.returncode not in (0, 3) or line is None:
        sys.exit(f"the ray run failed ({result.returncode}): {result.stderr[-1500:]}")
    return int(line.split()[1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--rss-images", type=int, nargs="+", default=[40, 400])
    parser.add_argument("--model", default="dlib")
    args = parser.parse_args()

    import ray

    from faceqan.distributed import connect

    photos = lfw_photos(args.images)
    print(f"{len(photos)} LFW photos, {args.model}, FaceQAN at its defaults, {os.cpu_count()} CPUs")
    local = local_rate(photos, args.model)
    print(f"local engine:        {local:.3f} images/s")
    connect(None, quiet=True)
    rates = {}
    for actors in (1, 2):
        rates[actors] = ray_rate(photos, args.model, actors)
        print(f"ray, {actors} actor{'s' if actors > 1 else ' '}:       {rates[actors]:.3f} images/s")
    ray.shutdown()
    print(f"ray_overhead_vs_local: {local / max(rates.values()):.2f}")
    for count in args.rss_images:
        print(f"driver_peak_rss_mib[{count} images]: {driver_peak_rss_mib(lfw_photos(count)):.0f}")


if __name__ == "__main__":
    main()
