"""Operating points of a quality gate, on hand-made cases."""

import numpy as np
import pytest

from faceqan.evaluation.operating_points import operating_points, operating_points_table, quality_threshold, random_operating_points
from faceqan.evaluation.protocols import Protocol


def _protocol(first, second, mated) -> Protocol:
    n = int(max(max(first), max(second))) + 1
    first, second = np.array(first), np.array(second)
    return Protocol([f"img{i}" for i in range(n)], first, second, np.array(mated, bool), np.zeros(first.size, int), np.zeros(first.size, int))


def test_quality_threshold_rejects_the_share_asked_for_and_keeps_ties():
    q = np.array([0.5, 0.1, 0.3, 0.3, np.nan, 0.9])
    assert quality_threshold(q, 0.0) == 0.1
    assert quality_threshold(q, 0.2) == 0.3  # one of five below it
    assert quality_threshold(q, 0.4) == 0.3  # the tie at 0.3 is kept whole
    assert quality_threshold(q, 0.6) == 0.5
    assert quality_threshold(q, 1.0) == 0.9  # never more than all but the best
    with pytest.raises(ValueError, match="no image has a quality"):
        quality_threshold(np.array([np.nan, np.nan]), 0.1)


def test_operating_points_by_hand():
    # Images 0..4; image 4 has no quality (no face) and is always rejected.
    quality = np.array([0.9, 0.2, 0.8, 0.7, np.nan])
    protocol = _protocol([0, 0, 1, 2, 0, 1, 3], [2, 3, 3, 3, 1, 4, 4], [1, 1, 1, 0, 0, 1, 0])
    scores = np.array([0.9, 0.8, 0.3, 0.6, 0.4, 0.7, 0.5])
    rows = operating_points(protocol, scores, quality, score_threshold=0.5, rates=(0.25, 0.5))
    none, quarter, half = rows
    # No gate: image 4 still goes, so pairs 5 and 6 do; mated left 0, 1, 2 (2 is a miss).
    assert none["reject_rate"] == 0 and none["quality_threshold"] == -np.inf
    assert none["images_rejected"] == pytest.approx(0.2)
    assert none["mated_pairs_kept"] == pytest.approx(3 / 4) and none["fnmr"] == pytest.approx(1 / 3)
    assert none["nonmated_pairs_kept"] == pytest.approx(2 / 3) and none["fmr"] == pytest.approx(1 / 2)  # pair 3 at 0.6
    # 25 %: threshold 0.7 rejects image 1: pair 2 (the miss) and pair 4 go.
    assert quarter["quality_threshold"] == 0.7 and quarter["images_rejected"] == pytest.approx(0.4)
    assert quarter["fnmr"] == 0.0 and quarter["mated_pairs_kept"] == pytest.approx(2 / 4) and quarter["fmr"] == 1.0
    # 50 %: threshold 0.8 rejects image 3 too: only mated pair 0 is left, no non-mated one.
    assert half["quality_threshold"] == 0.8 and half["fnmr"] == 0.0 and np.isnan(half["fmr"])


def test_random_gate_leaves_fnmr_where_it_was():
    rng = np.random.default_rng(0)
    n = 400
    first, second = np.triu_indices(n, 1)
    mated = rng.uniform(size=first.size) < 0.05
    scores = np.where(mated, rng.normal(0.7, 0.1, first.size), rng.normal(0.1, 0.1, first.size))
    protocol = _protocol(first, second, mated)
    rows = random_operating_points(protocol, scores, 0.5, seeds=5, rates=(0.1, 0.3))
    assert rows[1]["fnmr"] == pytest.approx(rows[0]["fnmr"], rel=0.15)
    assert rows[2]["fnmr"] == pytest.approx(rows[0]["fnmr"], rel=0.15)
    assert rows[2]["images_rejected"] == pytest.approx(0.3, abs=0.01)
    # An oracle quality (low for the images in missed mated pairs) lowers the FNMR.
    missed = np.zeros(n)
    for side in (first, second):
        np.add.at(missed, side[mated & (scores < 0.5)], 1)
    oracle = operating_points(protocol, scores, -missed + rng.uniform(0, 0.1, n), 0.5, (0.3,))
    assert oracle[1]["fnmr"] < 0.25 * oracle[0]["fnmr"]


def test_table_lists_each_method_at_each_rate():
    quality = np.array([0.9, 0.2, 0.8, 0.7])
    protocol = _protocol([0, 1, 2], [1, 2, 3], [1, 1, 0])
    scores = np.array([0.9, 0.3, 0.6])
    points = {name: operating_points(protocol, scores, q, 0.5, (0.25,)) for name, q in (("a", quality), ("b", -quality))}
    table = operating_points_table(points, "a")
    lines = table.strip().splitlines()
    assert lines[0] == "| images rejected | a threshold | FNMR a | FNMR b | FMR a |"
    assert lines[2] == "| none | - | 0.5000 | 0.5000 | 1.00000 |"
    # a's gate at 0.7 drops image 1 and with it both mated pairs: no FNMR left to show.
    assert lines[3] == "| 25% | 0.7000 | n/a | 1.0000 | 1.00000 |"
