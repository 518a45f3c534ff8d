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
from ..version import __version__
from .features import features_and_embedding
from .files import save_student
from .head import RidgeHead, fit_head
from .refine import refine_labels

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
        if settings.get("faceqan") != __version__:
            raise ValueError(f"{file}: labels made by faceqan {settings.get('faceqan')}, not by this faceqan {__version__}; score them again")
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


@dataclass
class TrainingSet:
    """The labelled faces whose features could be computed: features, q_adv, person of each."""

    paths: list[str]
    features: np.ndarray
    q_adv: np.ndarray
    groups: np.ndarray
    teacher: dict


def check_disjoint(labels: Labels, protocols: list[str]) -> None:
    """Refuse labels of a person a protocol judges on (people are image folder names, as in the
    student's cross-validation), naming the first such image."""
    from ..evaluation.datasets import load_protocol

    for spec in protocols:
        judged = {Path(image).parent.name for image in load_protocol(spec).image_paths()}
        for path in labels.paths:
            if Path(path).parent.name in judged:
                raise ValueError(f"{path}: its person {Path(path).parent.name!r} is judged in {spec}; a student must not learn from the people it is judged on")


def training_set(labels: Labels, model: FaceModel, cache: str | Path, batch_size: int = 16, progress: bool = True) -> TrainingSet:
    """The student's features of each labelled face (cached in ``cache``); faces not found again are left out."""
    preparer = FacePreparer(model.spec, aligned=bool(labels.teacher.get("aligned")), landmarks=labels.teacher.get("landmarks") or "refined")
    setting = {"kind": "student-features", "model_sha256": model.fingerprint(), **preparer.settings(), "format": 1}
    rows = cached_values(labels.paths, preparer, FeatureMethod(model), ResultCache(cache, {**setting, "faceqan": __version__}), batch_size, progress)
    keep = [i for i, path in enumerate(labels.paths) if (rows.get(path) or {}).get("status") == "ok"]
    if not keep:
        raise ValueError("no face of the score files could be prepared again for the features")
    paths = [labels.paths[i] for i in keep]
    features = np.array([rows[path]["features"] for path in paths], np.float64)
    groups = np.array([Path(path).parent.name for path in paths])
    return TrainingSet(paths, features, labels.q_adv[keep], groups, labels.teacher)


def distill(score_files: list[str], model: FaceModel, model_name: str, output: str | Path, cache: str | Path, batch_size: int = 16,
            progress: bool = True, seed: int = 0, disjoint_from: tuple[str, ...] = (), refine: float = 0.0) -> RidgeHead:  # fmt: skip
    """Fit a student to the score files' labels (refined by identity with step ``refine``, see
    student.refine) and write it to ``output``; refuses labels of people ``disjoint_from``'s
    protocols judge on."""
    labels = read_labels(score_files, model)
    check_disjoint(labels, list(disjoint_from))
    data = training_set(labels, model, cache, batch_size, progress)
    embedding_size = model.spec.embedding_size or 0
    if refine and not embedding_size:
        raise ValueError(f"label refinement needs the model's embedding size, which {model_name!r} does not state")
    target = refine_labels(data.q_adv, data.features[:, -embedding_size - 1 : -1], data.groups, refine) if refine else data.q_adv
    head = fit_head(data.features, target, data.groups, seed=seed)
    training = {"refine": refine, "disjoint_from": [Path(spec).name for spec in disjoint_from], "faces": len(data.paths), "people": int(np.unique(data.groups).size)}
    save_student(output, head, model_name, model.fingerprint(), data.teacher, data.features.shape[1], training)
    return head
