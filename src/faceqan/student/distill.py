"""``faceqan distill``: train a student from FaceQAN score files of one model."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..cache import ResultCache
from ..evaluation.evaluate import cached_values
from ..faces.prepare import FacePreparer
from ..methods.base import QualityMethod
from ..methods.faceqan_method import FaceQANMethod
from ..models.spec import FaceModel
from ..sinks import read_rows, settings_file
from .features import features_and_embedding
from .files import save_student
from .head import RidgeHead, fit_head

TEACHER_KEYS = (*FaceQANMethod.score_options, "landmarks", "aligned")  # what the labels depend on


class FeatureMethod(QualityMethod):
    """The student's features of each face, as one ``features`` column (cached by distill)."""

    name = "student-features"
    columns = ("features",)

    def compute(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"features": features_and_embedding(self.model, images)[0]}


@dataclass
class Labels:
    paths: list[str]
    q_adv: np.ndarray
    teacher: dict


def read_labels(score_files: list[str], model: FaceModel) -> Labels:
    """The largest face's q_adv of every ok row, from FaceQAN score files made with ``model``."""
    paths, values, teacher = [], [], None
    for file in score_files:
        sidecar = settings_file(file)
        if not sidecar.exists():
            raise ValueError(f"{file}: no {sidecar.name} beside it; distill reads `faceqan score` outputs")
        settings = json.loads(sidecar.read_text())
        if settings.get("method", "faceqan") != "faceqan":
            raise ValueError(f"{file} holds {settings['method']} scores; distill learns from FaceQAN's")
        if settings.get("model_sha256") != model.fingerprint():
            raise ValueError(f"{file} was scored with the model {settings.get('model')!r} (other weights), not the one given to distill")
        run = {key: settings.get(key) for key in TEACHER_KEYS}
        if teacher is not None and run != teacher:
            raise ValueError(f"{file}: its FaceQAN settings differ from the other score files' ({run} vs {teacher})")
        teacher = run
        for row in read_rows(file):
            if row.get("status") == "ok" and str(row.get("face")) == "0" and row.get("q_adv") not in ("", None):
                paths.append(row["path"])
                values.append(float(row["q_adv"]))
    if not paths:
        raise ValueError(f"no ok rows in {', '.join(score_files)}: nothing to learn from")
    return Labels(paths, np.array(values), teacher or {})


def distill(score_files: list[str], model: FaceModel, model_name: str, output: str | Path, cache: str | Path, batch_size: int = 16,
            progress: bool = True, seed: int = 0) -> RidgeHead:  # fmt: skip
    """Fit a student to the score files' labels and write it to ``output``."""
    labels = read_labels(score_files, model)
    preparer = FacePreparer(model.spec, aligned=bool(labels.teacher.get("aligned")), landmarks=labels.teacher.get("landmarks") or "refined")
    setting = {"kind": "student-features", "model_sha256": model.fingerprint(), **preparer.settings(), "format": 1}
    from ..version import __version__

    rows = cached_values(labels.paths, preparer, FeatureMethod(model), ResultCache(cache, {**setting, "faceqan": __version__}), batch_size, progress)
    keep = [i for i, path in enumerate(labels.paths) if (rows.get(path) or {}).get("status") == "ok"]
    if not keep:
        raise ValueError("no face of the score files could be prepared again for the features")
    features = np.array([rows[labels.paths[i]]["features"] for i in keep], np.float64)
    groups = np.array([Path(labels.paths[i]).parent.name for i in keep])
    head = fit_head(features, labels.q_adv[keep], groups, seed=seed)
    save_student(output, head, model_name, model.fingerprint(), labels.teacher, features.shape[1])
    return head
