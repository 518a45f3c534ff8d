"""The benchmark scripts run from a clean clone (tiny settings: this checks they work, not speed)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _run(script, *args):
    result = subprocess.run([sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_speed_benchmark_agrees_with_the_official_loop():
    out = _run("speed.py", "--images", "2", "--copies", "2", "--steps", "2")
    difference = float(re.search(r"score difference: ([0-9.e+-]+)", out).group(1))
    assert difference < 1e-3
    assert re.search(r"^speedup_vs_official_loop: \d+\.\d\d$", out, re.MULTILINE)
    for label in ("official loop (transcribed)", "engine, variant official", "engine, variant paper", "forward-equivalents"):
        assert label in out


def test_memory_benchmark_reports_peaks():
    from conftest import SHARED

    if not (SHARED / "data" / "lfw_aligned_112" / "data").is_dir():
        pytest.skip(f"pre-aligned LFW not found under {SHARED}/data (set FACEQAN_SHARED)")
    out = _run("memory.py", "--images", "2", "4")
    assert re.search(r"^\s+4 images: 4 rows, peak RSS [0-9.]+ MiB$", out, re.MULTILINE)
    assert "peak ratio 4 / 2 images" in out


def test_service_throughput_benchmark_reports_each_batch_size():
    out = _run("service_throughput.py", "--clients", "2", "--requests", "1", "--batch-sizes", "1", "2")
    for size in (1, 2):
        assert re.search(rf"^batch size +{size}: +[0-9.]+ requests/s \([0-9.]+ s, 0 failed\)$", out, re.MULTILINE)
