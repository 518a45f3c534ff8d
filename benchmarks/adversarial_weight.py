"""Rank by q_adv^w * s_f for several w: could another eps have changed FaceQAN's standing?

    python benchmarks/adversarial_weight.py QUALITIES_CSV [--weights 0.25 0.5 1 2 4 8] [--out runs/adversarial_weight.csv]

FaceQAN ranks images by q_adv * s_f (the power p does not change the order). eps mostly sets
how widely q_adv spreads, that is how much it weighs against s_f, while q_adv's own order
barely moves with eps; so ranking by q_adv^w * s_f sweeps the balance that eps would set,
from s_f alone (w -> 0) to q_adv alone (w -> inf), without re-running the attack. w = 1 is
FaceQAN's own ranking. Reads the ``qualities.csv`` that `faceqan evaluate --method faceqan`
writes; writes log(q_adv) * w + log(s_f) per weight, in a CSV that
`faceqan evaluate --quality-csv w2=OUT:w2` reads. Judging the weights on the evaluation
set is a sensitivity check, not a way to choose defaults.
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

Q_ADV, FLIP = "faceqan q_adv (no symmetry)", "s_f (from faceqan)"


def weighted_log_quality(q_adv: float, flip_sim: float, weight: float) -> float:
    """log(q_adv^w * s_f); -inf where s_f <= 0 (the paper's Q clips such a face to 0)."""
    return weight * math.log(q_adv) + (math.log(flip_sim) if flip_sim > 0 else -math.inf)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("qualities", help="qualities.csv from `faceqan evaluate --method faceqan`")
    parser.add_argument("--weights", type=float, nargs="+", default=[0.25, 0.5, 1, 2, 4, 8])
    parser.add_argument("--out", default="runs/adversarial_weight.csv")
    args = parser.parse_args()
    with open(args.qualities, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or Q_ADV not in rows[0] or FLIP not in rows[0]:
        raise SystemExit(f"{args.qualities} has no {Q_ADV!r} and {FLIP!r} columns: evaluate with --method faceqan")
    names = [f"w{w:g}" for w in args.weights]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "status", *names])
        for row in rows:
            if row[Q_ADV] == "" or row[FLIP] == "":
                writer.writerow([row["path"], "no_quality", *[""] * len(names)])
            else:
                writer.writerow([row["path"], "ok", *[weighted_log_quality(float(row[Q_ADV]), float(row[FLIP]), w) for w in args.weights]])
    print(f"wrote {args.out}: {len(rows)} images, columns {' '.join(names)}")


if __name__ == "__main__":
    main()
