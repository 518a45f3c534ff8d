"""Where the evaluation data of tests, benchmarks and scripts lives: ``$FACEQAN_SHARED``, else
the ``shared/`` folder beside a source checkout (``data/lfw``, ``data/lfw_aligned_112``,
``fixtures/``). Missing data is one ``MissingData`` error naming the path and the variable."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

ENVIRONMENT_VARIABLE = "FACEQAN_SHARED"


class MissingData(FileNotFoundError):
    """The shared data (or the part of it asked for) is not where it was looked for."""


def shared_root() -> Path:
    """``$FACEQAN_SHARED`` if set, else ``shared/`` beside the checkout that holds ``src/faceqan``."""
    configured = os.environ.get(ENVIRONMENT_VARIABLE)
    if configured:
        return Path(configured).expanduser()
    return Path(__file__).resolve().parents[3] / "shared"


def shared_path(*parts: str, what: str, marker: str | None = None) -> Path:
    """``shared_root() / parts``, checked to exist (``marker``: a file inside it that must)."""
    path = shared_root().joinpath(*parts)
    probe = path / marker if marker else path
    if not probe.exists():
        raise MissingData(f"{what} not found at {probe} (set {ENVIRONMENT_VARIABLE} to the folder holding data/ and fixtures/)")
    return path


def lfw() -> Path:
    """LFW deep-funneled: ``images_deepfunneled/``, ``pairs.txt`` and View 1's pair files."""
    return shared_path("data", "lfw", what="LFW", marker="pairs.txt")


def lfw_aligned() -> Path:
    """The 7,701 View 2 images aligned to 112x112 (``<Name>/<file>.jpg`` under the returned folder)."""
    return shared_path("data", "lfw_aligned_112", "data", what="pre-aligned LFW (lfw_aligned_112)")


def dlib_fixture() -> Path:
    """Reference outputs of the real dlib (descriptors, landmarks, chip transforms)."""
    return shared_path("fixtures", "dlib_reference.npz", what="dlib reference fixture")


FINDERS = {"root": shared_root, "lfw": lfw, "lfw_aligned": lfw_aligned, "dlib_fixture": dlib_fixture}


def require(finder: Callable[[], Path]) -> Path:
    """``finder()`` for a script: missing data stops it with one line and exit code 1."""
    try:
        return finder()
    except MissingData as missing:
        raise SystemExit(f"error: {missing}") from None


def given_or_shared_lfw(given: str | Path | None) -> Path:
    """A script's ``--lfw`` folder if given, else the shared LFW (missing: one line, exit 1)."""
    return Path(given) if given else require(lfw)


if __name__ == "__main__":  # for shell scripts: python -m faceqan.shared_data lfw
    import sys

    if len(sys.argv) != 2 or sys.argv[1] not in FINDERS:
        raise SystemExit(f"usage: python -m faceqan.shared_data {{{','.join(FINDERS)}}}")
    print(require(FINDERS[sys.argv[1]]))
