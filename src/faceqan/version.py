"""faceqan's version, written once in pyproject.toml: the installed package's metadata, or in a
source checkout run without installing (PYTHONPATH=src) the pyproject.toml beside it."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path


def _version() -> str:
    try:
        return metadata.version("faceqan")
    except metadata.PackageNotFoundError:
        pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
        found = re.search(r'^version = "([^"]+)"', pyproject.read_text(), re.M) if pyproject.is_file() else None
        if found is None:
            raise ImportError("faceqan is neither installed nor run from its source checkout: pip install faceqan") from None
        return found.group(1)


__version__ = _version()
