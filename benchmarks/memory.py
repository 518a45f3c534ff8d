"""Peak memory of a `faceqan score` run against the number of images (it should stay flat).

    python benchmarks/memory.py --images 200 2000 [--model dlib]

Each size runs in its own subprocess on the first N pre-aligned LFW images
(../shared/data/lfw_aligned_112, `--aligned`, k=2, l=1 to keep it short: memory per batch
does not depend on how many batches follow) and reports the child's peak RSS.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from faceqan.shared_data import lfw_aligned, require



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, nargs="+", default=[200, 2000])
    parser.add_argument("--model", default="dlib")
    args = parser.parse_args()
    files = sorted(str(p) for p in require(lfw_aligned).rglob("*.jpg"))
    if len(files) < max(args.images):
        sys.exit(f"error: need {max(args.images)} pre-aligned LFW images, found {len(files)}")
    peaks = {}
    with tempfile.TemporaryDirectory() as tmp:
        for count in args.images:
            listing = Path(tmp) / f"list{count}.txt"
            listing.write_text("\n".join(files[:count]) + "\n")
            out = Path(tmp) / f"out{count}.csv"
            cli_args = ["score", str(listing), "-o", str(out), "--aligned", "--model", args.model, "--copies", "2", "--steps", "1", "--quiet"]
            code = (
                "import resource, sys; from faceqan.cli import main; code = main(sys.argv[1:]); "
                "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(code)"
            )
            result = subprocess.run([sys.executable, "-c", code, *cli_args], capture_output=True, text=True)
            if result.returncode not in (0, 3):  # 3: some inputs failed, their rows written
                lines = (result.stderr or result.stdout).strip().splitlines() or ["(no output)"]
                sys.exit(f"error: faceqan score on {count} images exited with {result.returncode}: {lines[-1]}")
            peaks[count] = int(result.stdout.split()[-1])  # KiB
            rows = out.read_text().count("\n") - 1
            print(f"{count:6d} images: {rows} rows, peak RSS {peaks[count] / 1024:.1f} MiB", flush=True)
    counts = sorted(peaks)
    if len(counts) > 1:
        print(f"peak ratio {counts[-1]} / {counts[0]} images: {peaks[counts[-1]] / peaks[counts[0]]:.3f}")


if __name__ == "__main__":
    main()
