"""Scores do not depend on which CPU kernels ran: the demo scored under two kernel levels
(ATen, oneDNN and OpenCV capped at start-up), each in its own process."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "portability.py"


@pytest.mark.slow
def test_demo_scores_agree_across_cpu_kernel_levels(tmp_path):
    sys.path.insert(0, str(BENCHMARK.parent))
    try:
        from portability import GOAL, supported_levels
    finally:
        sys.path.pop(0)
    levels = supported_levels()
    if len(levels) < 2:
        pytest.skip(f"this CPU offers one kernel level only ({levels})")
    out = tmp_path / "scores.json"
    result = subprocess.run(
        [sys.executable, str(BENCHMARK), "--images", "0", "--levels", levels[0], levels[-1], "--out", str(out)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    scores = json.loads(out.read_text())
    low, high = scores[levels[0]], scores[levels[-1]]
    assert set(low) == set(high) and len(low) == 7
    assert max(abs(low[name] - high[name]) for name in low) <= GOAL
    assert sorted(low, key=low.get) == sorted(high, key=high.get)
    assert "goal (|dQ| <= 0.001): pass" in result.stdout
