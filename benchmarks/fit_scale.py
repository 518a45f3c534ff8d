"""Fit a built-in 0-100 scale: the model's FaceQAN scores (default settings) of LFW View 1's
training images, as the student labelling writes them (originals only, not the degraded copies).

    python benchmarks/fit_scale.py runs/student/labels_dlib.csv --model dlib

Writes src/faceqan/scales/MODEL.json through `faceqan scale`; prints its percentiles 10, 50, 90.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("labels", help="score file of the student set (its .settings.json beside it)")
    parser.add_argument("--model", required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        originals = Path(folder) / "view1_train.csv"
        with open(args.labels, newline="") as source, open(originals, "w", newline="") as target:
            reader = csv.DictReader(source)
            writer = csv.DictWriter(target, fieldnames=reader.fieldnames)
            writer.writeheader()
            writer.writerows(row for row in reader if "/degraded/" not in row["path"])
        shutil.copy(f"{args.labels}.settings.json", f"{originals}.settings.json")
        out = ROOT / "src" / "faceqan" / "scales" / f"{args.model}.json"
        out.parent.mkdir(exist_ok=True)
        command = [sys.executable, "-m", "faceqan", "scale", str(originals), "-o", str(out), "--reference", "LFW View 1 training images (pairsDevTrain.txt)"]
        subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
