"""README.md shows what the code does: the demo's table as `faceqan demo` prints it, within 1e-3."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _readme_demo():
    spec = importlib.util.spec_from_file_location("readme_demo", ROOT / "scripts" / "readme_demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_the_readme_demo_block_is_what_faceqan_demo_prints():
    readme_demo = _readme_demo()
    text = (ROOT / "README.md").read_text()
    start, end = readme_demo.readme_block(text)
    shown = "\n".join(line[4:] for line in text[start:end].splitlines())
    assert readme_demo.differences(shown, readme_demo.demo_output()) == [], "run: python scripts/readme_demo.py"


def test_differences_catch_a_changed_score_and_a_changed_ranking():
    readme_demo = _readme_demo()
    table = (
        "FaceQAN quality with model dlib (eps=0.01, l=5, k=10, p=5, paper):\n"
        "rank  sample                  quality  mean_sim  std_sim flip_sim\n"
        "   1  original                 0.8744   0.96633  0.00288   0.9930\n"
        "   2  blur sigma 5             0.6615   0.90748  0.01232   0.9774"
    )
    assert readme_demo.differences(table, table) == []
    assert readme_demo.differences(table, table.replace("0.8744", "0.8760"))
    swapped = table.replace("original", "XX").replace("blur sigma 5", "original").replace("XX", "blur sigma 5")
    assert any("ranking" in p for p in readme_demo.differences(table, swapped))


def test_the_readme_stays_a_guide():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 250, "README.md is a user's guide: studies and history go to docs/"
    commands = [line.strip() for line in lines if line.strip().startswith("bash scripts/setup.sh")]
    assert commands[:2] == ["bash scripts/setup.sh && .venv/bin/faceqan demo", "bash scripts/setup.sh && .venv/bin/python -m pytest -q"]
