"""README's headline LFW View 2 table, written from one `faceqan evaluate` run.

    python benchmarks/lfw_headline.py docs/lfw/dlib-quality_dlib-errors_all-pairs/results.csv README.md

Replaces what lies between the README's ``<!-- headline -->`` and ``<!-- /headline -->``
lines: ERC AUC x1e3 at 10/20/40/80 % and EDC pAUC (brackets) per method, two methods per row,
the best value of each column in bold, a note on the student's training people, then the FNMR left after refusing the fifth of the
images FaceQAN scores lowest (from the run's operating_points.csv).
"""

from __future__ import annotations

import argparse
import csv
import re
from pathlib import Path

COLUMNS = ("erc_auc@10", "erc_auc@20", "erc_auc@40", "erc_auc@80")
NAMES = {"faceqan": "**FaceQAN**", "faceqan q_adv (no symmetry)": "q_adv only", "flip": "s_f only (mirror)", "faceqan-student": "student (one pass)*",
         "froq": "FROQ (one pass)", "serfiq": "SER-FIQ", "embedding_norm": "embedding norm", "sharpness": "sharpness", "random": "random (10 seeds)"}  # fmt: skip
START, END = "<!-- headline -->", "<!-- /headline -->"


def cell(row: dict[str, str], best: dict[str, float]) -> str:
    values = [f"{float(row[c]):.1f}" for c in COLUMNS]
    values = [f"**{v}**" if float(v) <= best[c] else v for v, c in zip(values, COLUMNS)]
    edc = next(k for k in row if k.startswith("edc_pauc@") and not k.endswith(("_low", "_high", "-best")))
    return " / ".join(values) + f" ({float(row[edc]):.1f})"


def table(results: Path) -> list[str]:
    with open(results, newline="") as handle:
        rows = {re.sub(r" \(.*seeds.*\)$", "", r["method"]): r for r in csv.DictReader(handle)}
    rows = {name: row for name, row in rows.items() if name in NAMES}
    best = {c: min(round(float(r[c]), 1) for r in rows.values()) for c in COLUMNS}
    cells = [(NAMES[name], cell(row, best)) for name, row in rows.items()]
    half = (len(cells) + 1) // 2
    lines = ["| quality from the model | ERC AUC (EDC pAUC) | | quality from the model | ERC AUC (EDC pAUC) |", "|---|---|---|---|---|"]
    for left, right in zip(cells[:half], cells[half:] + [("", "")]):
        lines.append(f"| {left[0]} | {left[1]} | | {right[0]} | {right[1]} |")
    with open(results.parent / "operating_points.csv", newline="") as handle:
        points = [r for r in csv.DictReader(handle) if r["method"] == "faceqan"]
    start = next(float(r["fnmr"]) for r in points if float(r["reject_rate"]) == 0)
    fifth = next(float(r["fnmr"]) for r in points if abs(float(r["reject_rate"]) - 0.2) < 1e-9)
    note = "\\* Trained on faces of View 2's people (these very images among them): [docs/student.md](docs/student.md) judges it on people it never saw. " if "faceqan-student" in rows else ""
    lines += ["", note + f"Refusing the fifth of the images that FaceQAN scores lowest takes FNMR from {start:.3f} to {fifth:.3f}."]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="results.csv of a `faceqan evaluate` run")
    parser.add_argument("readme", type=Path)
    args = parser.parse_args()
    text = args.readme.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{args.readme}: no {START} ... {END} block to replace")
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    args.readme.write_text(head + START + "\n" + "\n".join(table(args.results)) + "\n" + END + tail)
    print(f"{args.readme}: headline table from {args.results}")


if __name__ == "__main__":
    main()
