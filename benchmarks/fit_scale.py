"""Fit a built-in 0-100 scale: a model's scores (default settings) of LFW View 1's 3,443
training images (originals only: rows of degraded copies are dropped).

    python benchmarks/fit_scale.py runs/student/labels_dlib.csv --model dlib   # FaceQAN: the teacher labels
    grep -v /degraded/ runs/student/images.txt > runs/view1_train.txt
    faceqan score runs/view1_train.txt --model dlib --method faceqan-student -o runs/student_dlib.csv
    python benchmarks/fit_scale.py runs/student_dlib.csv --model dlib --method faceqan-student

Writes src/faceqan/scales/MODEL.json (FaceQAN) or MODEL.METHOD.json through `faceqan scale`.
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
    parser.add_argument("--method", default="faceqan", help="the method the scores were made with")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        originals = Path(folder) / "view1_train.csv"
        with open(args.labels, newline="") as source, open(originals, "w", newline="") as target:
            reader = csv.DictReader(source)
            writer = csv.DictWriter(target, fieldnames=reader.fieldnames)
            writer.writeheader()
            writer.writerows(row for row in reader if "/degraded/" not in row["path"])
        shutil.copy(f"{args.labels}.settings.json", f"{originals}.settings.json")
        out = ROOT / "src" / "faceqan" / "scales" / (f"{args.model}.json" if args.method == "faceqan" else f"{args.model}.{args.method}.json")
        out.parent.mkdir(exist_ok=True)
        command = [sys.executable, "-m", "faceqan", "scale", str(originals), "-o", str(out), "--reference", "LFW View 1 training images (pairsDevTrain.txt)"]
        subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
