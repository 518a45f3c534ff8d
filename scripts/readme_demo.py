"""Write `faceqan demo`'s output into README.md (the block after "The demo prints"), so that
the README shows what the code prints; tests/test_readme.py checks that it still does.

    python scripts/readme_demo.py            # rewrite the block
    python scripts/readme_demo.py --check    # exit 1 if the README's block differs by more than 1e-3
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
TOLERANCE = 1e-3


def demo_output() -> str:
    import faceqan
    from faceqan.demo import demo_rows, demo_table
    from faceqan.methods import create_method

    model = faceqan.create_model("dlib")
    method = create_method("faceqan", model)
    return demo_table("dlib", method, demo_rows(model, method))


def readme_block(text: str) -> tuple[int, int]:
    """Start and end offsets of the indented demo output in the README."""
    match = re.search(r"^    FaceQAN quality with model .*?\n(?:    .*\n)+", text, flags=re.M)
    if match is None:
        raise ValueError("README.md has no demo output block (an indented 'FaceQAN quality with model ...' block)")
    return match.start(), match.end()


def rows(block: str) -> list[tuple[str, list[float]]]:
    """(sample, numbers) per ranked line of a demo table."""
    parsed = []
    for line in block.splitlines()[2:]:
        match = re.match(r"\s*\d+\s+(.+?)\s+(-?\d\.\d+)\s+(-?\d\.\d+)\s+(-?\d\.\d+)\s+(-?\d\.\d+)", line)
        if match:
            parsed.append((match.group(1), [float(v) for v in match.groups()[1:]]))
    return parsed


def differences(expected: str, actual: str) -> list[str]:
    """What differs between two demo tables beyond the tolerance (empty: they agree)."""
    problems = []
    if expected.splitlines()[0] != actual.splitlines()[0]:
        problems.append(f"settings line: {expected.splitlines()[0]!r} != {actual.splitlines()[0]!r}")
    want, got = rows(expected), rows(actual)
    if [name for name, _ in want] != [name for name, _ in got]:
        problems.append(f"ranking: {[n for n, _ in want]} != {[n for n, _ in got]}")
    for (name, a), (_, b) in zip(want, got):
        if any(abs(x - y) > TOLERANCE for x, y in zip(a, b)):
            problems.append(f"{name}: {a} != {b}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    text = README.read_text()
    start, end = readme_block(text)
    actual = demo_output()
    if args.check:
        problems = differences(text[start:end].replace("\n    ", "\n").strip(), actual)
        print("\n".join(problems) or "README demo block agrees with faceqan demo")
        return 1 if problems else 0
    README.write_text(text[:start] + "".join(f"    {line}\n" for line in actual.splitlines()) + text[end:])
    print(actual)
    return 0


if __name__ == "__main__":
    sys.exit(main())
