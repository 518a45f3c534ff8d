"""Optional dependencies: each feature that needs one says which extra installs it."""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingExtraError(ValueError):
    """A feature's optional dependency is not installed (the message names the pip extra)."""


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import ``module`` or raise MissingExtraError naming ``pip install 'faceqan[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = module.split(".")[0]
        raise MissingExtraError(f"the {package} package is needed for {feature}: pip install 'faceqan[{extra}]'") from None
