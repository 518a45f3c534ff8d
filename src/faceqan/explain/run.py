"""``faceqan explain``: noise-map panels for the faces of image files."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..algorithm import FaceQAN
from ..faces.chips import chip_name
from ..faces.prepare import FacePreparer, PreparedFace
from ..pipeline import chips_to_tensor
from .panel import render_panel


@dataclass
class Explained:
    face: PreparedFace
    panel: Path | None  # None: the face could not be scored (see face.status / error)


def explain_paths(paths: list[str], preparer: FacePreparer, scorer: FaceQAN, out: str | Path) -> Iterator[Explained]:
    """A panel per face of each path, written under ``out``; failures yielded without one."""
    for path in paths:
        for face in preparer(path):
            if face.chip is None:
                yield Explained(face, None)
                continue
            try:
                parts, perturbation = scorer.explain(chips_to_tensor([face.chip]).to(scorer.device))
            except (ValueError, RuntimeError) as exc:
                face.status, face.error = "score_error", f"{type(exc).__name__}: {exc}"
                yield Explained(face, None)
                continue
            values = {name: float(getattr(parts, name)[0]) for name in ("quality", "q_adv", "flip_sim", "mean_sim", "std_sim")}
            panel = render_panel(face.chip, perturbation[0].numpy(), values, f"{face.path} (face {face.face})", Path(out) / chip_name(face.path, face.face))
            yield Explained(face, panel)


def scorer_from_settings(settings: dict) -> tuple[FaceQAN, FacePreparer]:
    """FaceQAN and the face preparation of a finished run, rebuilt from its ``.settings.json``."""
    from ..methods import create_method
    from ..models import create_model

    model = create_model(settings["model"], **settings.get("model_options", {}))
    options = {key: settings[key] for key in ("eps", "steps", "copies", "power", "variant", "seed") if key in settings}
    preparer = FacePreparer(model.spec, aligned=bool(settings.get("aligned")), landmarks=settings.get("landmarks", "refined"))
    return create_method("faceqan", model, **options).scorer, preparer
