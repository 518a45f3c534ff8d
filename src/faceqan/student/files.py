"""Student files: the head, and what it was trained for, saved with torch.save and read back
with ``weights_only=True`` (plain tensors, numbers and strings only).

Format 4 holds either kind of head: ``ridge`` (format 2's keys, still read) or ``tail`` (the
tuned blocks' and linear map's tensors, student.tail; format 3's, still read, always hold whole
blocks, format 4's may hold only low-rank changes, ``rank`` > 0, and take the rest from the model)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import torch

from ..version import __version__
from torch import nn

from .head import RidgeHead
from .tail import TailHead, tail_at

FORMAT = 4  # 2: the training set's description ("training": refinement step, people left out); 3: "kind", ridge or tail; 4: "rank"
READABLE = (2, 3, 4)  # a format-2 file is a ridge head with format 3's keys; a format-3 tail has rank 0
Head = RidgeHead | TailHead


class StudentFileError(ValueError):
    """A student file that cannot serve this model or this faceqan (the message says why)."""


def save_student(path: str | Path, head: Head, model_name: str, model_sha256: str, teacher: dict, training: dict) -> None:
    """Write a student file (the temporary-then-rename keeps a half-written file from ever existing)."""
    state = {"format": FORMAT, "faceqan": __version__, "model": model_name, "model_sha256": model_sha256, "teacher": teacher, "training": training, "report": head.report}
    if isinstance(head, TailHead):
        state.update(kind="tail", split=head.split, rank=head.rank, tail=head.learned_state())
    else:
        state.update(
            kind="ridge", features=int(head.mean.size), penalty=head.penalty,
            mean=torch.from_numpy(head.mean.astype(np.float32)), scale=torch.from_numpy(head.scale.astype(np.float32)),
            weight=torch.from_numpy(head.weight.astype(np.float32)), bias=float(head.bias), quantiles=torch.from_numpy(head.quantiles.astype(np.float32)),
        )  # fmt: skip
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    torch.save(state, temporary)
    temporary.replace(path)


def load_student(path: str | Path, model: nn.Module) -> tuple[Head, dict]:
    """The head and its metadata; refuses a file of another format or for other weights than
    ``model``'s (a FaceModel: a tail head is built from its blocks)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, ... for files that are not students
        raise StudentFileError(f"{path} is not a faceqan student file: {exc}") from None
    if not isinstance(state, dict) or "format" not in state:
        raise StudentFileError(f"{path} is not a faceqan student file (no format number)")
    if state["format"] not in READABLE:
        made_by = f" (made by faceqan {state['faceqan']})" if "faceqan" in state else ""
        raise StudentFileError(f"{path}: a student file of format {state['format']}{made_by}; this faceqan reads formats {', '.join(map(str, READABLE))}: distill it again")
    model_sha256 = model.fingerprint()
    if state["model_sha256"] != model_sha256:
        raise StudentFileError(f"{path} was trained for the model {state['model']!r} with other weights (sha256 {state['model_sha256'][:12]}), not this one ({model_sha256[:12]})")
    kind = state.get("kind", "ridge")
    if kind not in ("ridge", "tail"):
        raise StudentFileError(f"{path}: a student head of kind {kind!r}; this faceqan knows ridge and tail")
    if kind == "tail":
        try:
            head = tail_at(model, state["split"], state["tail"]["quantiles"].numpy(), rank=state.get("rank", 0))
            head.load_learned_state(state["tail"])
            head.merge()
        except (ValueError, RuntimeError, KeyError) as exc:  # blocks that do not fit this model's
            raise StudentFileError(f"{path}: its tuned blocks do not fit this model: {str(exc).splitlines()[0]}") from None
        head.report = state["report"]
        head.eval().requires_grad_(False)
    else:
        head = RidgeHead(*(state[k].double().numpy() for k in ("mean", "scale", "weight")), state["bias"], state["quantiles"].double().numpy(), state["penalty"], state["report"])
    return head, {"kind": kind, **{k: state.get(k) for k in ("faceqan", "model", "teacher", "features", "training", "report")}}


def builtin_student(model_name: str) -> Path | None:
    """The student shipped for a built-in model, if any."""
    path = resources.files("faceqan.student") / "builtin" / f"{model_name}.pt"
    return Path(str(path)) if path.is_file() else None
