"""Student files: the head, and what it was trained for, saved with torch.save and read back
with ``weights_only=True`` (plain tensors, numbers and strings only)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import torch

from ..version import __version__
from .head import RidgeHead

FORMAT = 2  # 2: the training set's description ("training": refinement step, people left out for judging)


class StudentFileError(ValueError):
    """A student file that cannot serve this model or this faceqan (the message says why)."""


def save_student(path: str | Path, head: RidgeHead, model_name: str, model_sha256: str, teacher: dict, features: int, training: dict) -> None:
    """Write a student file (the temporary-then-rename keeps a half-written file from ever existing)."""
    state = {
        "format": FORMAT, "faceqan": __version__, "model": model_name, "model_sha256": model_sha256, "teacher": teacher,
        "features": features, "training": training, "penalty": head.penalty, "report": head.report,
        "mean": torch.from_numpy(head.mean.astype(np.float32)), "scale": torch.from_numpy(head.scale.astype(np.float32)),
        "weight": torch.from_numpy(head.weight.astype(np.float32)), "bias": float(head.bias),
        "quantiles": torch.from_numpy(head.quantiles.astype(np.float32)),
    }  # fmt: skip
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    torch.save(state, temporary)
    temporary.replace(path)


def load_student(path: str | Path, model_sha256: str) -> tuple[RidgeHead, dict]:
    """The head and its metadata; refuses a file of another format or for other weights."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, ... for files that are not students
        raise StudentFileError(f"{path} is not a faceqan student file: {exc}") from None
    if not isinstance(state, dict) or "format" not in state:
        raise StudentFileError(f"{path} is not a faceqan student file (no format number)")
    if state["format"] != FORMAT:
        made_by = f" (made by faceqan {state['faceqan']})" if "faceqan" in state else ""
        raise StudentFileError(f"{path}: a student file of format {state['format']}{made_by}; this faceqan reads format {FORMAT}: distill it again")
    if state["model_sha256"] != model_sha256:
        raise StudentFileError(f"{path} was trained for the model {state['model']!r} with other weights (sha256 {state['model_sha256'][:12]}), not this one ({model_sha256[:12]})")
    head = RidgeHead(*(state[k].double().numpy() for k in ("mean", "scale", "weight")), state["bias"], state["quantiles"].double().numpy(), state["penalty"], state["report"])
    return head, {k: state[k] for k in ("faceqan", "model", "teacher", "features", "training", "report")}


def builtin_student(model_name: str) -> Path | None:
    """The student shipped for a built-in model, if any."""
    path = resources.files("faceqan.student") / "builtin" / f"{model_name}.pt"
    return Path(str(path)) if path.is_file() else None
