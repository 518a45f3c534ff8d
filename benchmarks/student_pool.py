"""Student v2's data: a second judging protocol of unseen people, and the training labels
without them.

    python benchmarks/student_pool.py [--lfw ../shared/data/lfw] [--labels benchmarks/student_labels] [--out runs/student/v2]

1. ``benchmarks/protocols/lfw_unseen_pairs.txt`` (LFW View 1 format: a count, then one
   ``Name n1 n2`` line per mated pair): every image of each LFW person of the shared data who
   appears in neither View 1 pairs file and has at least two images, as all pairs among them
   (``--all-pairs``). No student saw these people: View 1's training people are in
   pairsDevTrain.txt, and the extra pool's are dropped below.
2. ``OUT/labels_MODEL.csv`` (with its settings file) for each model: the teacher labels of
   View 1's training faces and of the extra pool (benchmarks/student_labels/), minus every row
   whose person is in pairsDevTest.txt or in the protocol above, degraded copies included.
Rerunning writes the same files.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import shutil
from collections import defaultdict
from pathlib import Path

from faceqan.evaluation.protocols import read_lfw_pairs
from faceqan.shared_data import given_or_shared_lfw
from faceqan.sinks import read_rows, settings_file

PROTOCOL = Path(__file__).parent / "protocols" / "lfw_unseen_pairs.txt"


def unseen_people(lfw: Path) -> dict[str, list[int]]:
    """Image numbers of each person in neither View 1 file who has two images or more."""
    view1 = {Path(image).parent.name for name in ("pairsDevTrain.txt", "pairsDevTest.txt") for image in read_lfw_pairs(lfw / name).images}
    numbers: dict[str, list[int]] = defaultdict(list)
    for path in (lfw / "images_deepfunneled").glob("*/*.jpg"):
        if path.parent.name not in view1:
            numbers[path.parent.name].append(int(path.stem.rsplit("_", 1)[1]))
    return {person: sorted(found) for person, found in sorted(numbers.items()) if len(found) >= 2}


def write_protocol(people: dict[str, list[int]], path: Path) -> int:
    lines = [f"{person}\t{a}\t{b}" for person, found in people.items() for a, b in itertools.combinations(found, 2)]
    path.write_text(f"{len(lines)}\n" + "".join(f"{line}\n" for line in lines))
    return len(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lfw", type=Path, default=None, help="LFW folder (default: the shared data, $FACEQAN_SHARED)")
    parser.add_argument("--labels", type=Path, default=Path("benchmarks/student_labels"))
    parser.add_argument("--out", type=Path, default=Path("runs/student/v2"))
    args = parser.parse_args()
    lfw = given_or_shared_lfw(args.lfw)
    people = unseen_people(lfw)
    mated = write_protocol(people, PROTOCOL)
    images = sum(map(len, people.values()))
    print(f"{PROTOCOL}: {len(people)} people, {images} images, {mated} mated pairs, {images * (images - 1) // 2 - mated} non-mated (all pairs)")
    judged = set(people) | {Path(image).parent.name for image in read_lfw_pairs(lfw / "pairsDevTest.txt").images}
    args.out.mkdir(parents=True, exist_ok=True)
    for model in ("dlib", "sface"):
        if not (args.labels / f"labels_{model}.csv").exists():
            print(f"{args.labels}: no labels_{model}.csv, {model} skipped")
            continue
        rows = [row for name in (f"labels_{model}.csv", f"labels_{model}_extra.csv") for row in read_rows(args.labels / name)]
        kept = [row for row in rows if Path(row["path"]).parent.name not in judged]
        target = args.out / f"labels_{model}.csv"
        with open(target, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(kept)
        shutil.copyfile(settings_file(args.labels / f"labels_{model}.csv"), settings_file(target))
        print(f"{target}: {len(kept)} of {len(rows)} label rows, {len({Path(r['path']).parent.name for r in kept})} people")


if __name__ == "__main__":
    main()
