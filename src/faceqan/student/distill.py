"""``faceqan distill``: train a student from FaceQAN score files of one model."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..algorithm import model_device
from ..cache import ResultCache
from ..evaluation.evaluate import cached_values
from ..faces.prepare import FacePreparer
from ..methods.base import QualityMethod
from ..methods.faceqan_method import FaceQANMethod
from ..models.spec import FaceModel
from ..pipeline import chips_to_tensor, prepared_batches
from ..sinks import read_rows, settings_file
from ..version import __version__
from .features import features_and_embedding
from .files import Head, save_student
from .head import QUANTILE_POINTS, fit_head, normal_scores
from .refine import refine_labels
from .tail import TailHead, finetune, new_tail, tail_inputs_and_embeddings, tail_split

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
    preparer = _preparer(labels, model)
    setting = {"kind": "student-features", "model_sha256": model.fingerprint(), **preparer.settings(), "format": 1}
    rows = cached_values(labels.paths, preparer, FeatureMethod(model), ResultCache(cache, {**setting, "faceqan": __version__}), batch_size, progress)
    keep = [i for i, path in enumerate(labels.paths) if (rows.get(path) or {}).get("status") == "ok"]
    if not keep:
        raise ValueError("no face of the score files could be prepared again for the features")
    paths = [labels.paths[i] for i in keep]
    features = np.array([rows[path]["features"] for path in paths], np.float64)
    groups = np.array([Path(path).parent.name for path in paths])
    return TrainingSet(paths, features, labels.q_adv[keep], groups, labels.teacher)


def _preparer(labels: Labels, model: FaceModel) -> FacePreparer:
    """Faces prepared as the teacher's labels were."""
    return FacePreparer(model.spec, aligned=bool(labels.teacher.get("aligned")), landmarks=labels.teacher.get("landmarks") or "refined")


def fit_tail(labels: Labels, model: FaceModel, blocks: int, epochs: int, refine: float, batch_size: int = 16, progress: bool = True, seed: int = 0, rank: int = 0) -> tuple[TailHead, np.ndarray]:
    """Fine-tune copies of the model's last ``blocks`` blocks (or, with ``rank``, rank-``rank``
    changes of their conv weights) with a linear head on the labels (refined by identity with step ``refine``); returns the head and the people of the faces
    used. The frozen part runs once per face, its outputs held in memory (~16 KB per face for dlib)."""
    from tqdm import tqdm

    split = tail_split(model, blocks)
    device = model_device(model)
    inputs, embeddings, paths = [], [], []
    with tqdm(total=len(labels.paths), unit="img", disable=not progress, desc="tail inputs") as bar:
        for faces in prepared_batches(labels.paths, _preparer(labels, model), batch_size):
            ok = [face for face in faces if face.face == 0 and face.chip is not None]
            if ok:
                tail_input, embedding = tail_inputs_and_embeddings(model, split, chips_to_tensor([face.chip for face in ok]).to(device))
                inputs.append(tail_input.float().cpu())
                embeddings.append(embedding.float().cpu())
                paths += [face.path for face in ok]
            bar.update(len({face.path for face in faces}))
    if not paths:
        raise ValueError("no face of the score files could be prepared again for the tail's inputs")
    index = {path: i for i, path in enumerate(labels.paths)}
    q_adv = labels.q_adv[[index[path] for path in paths]]
    groups = np.array([Path(path).parent.name for path in paths])
    target = refine_labels(q_adv, torch.cat(embeddings).numpy(), groups, refine) if refine else q_adv
    head = new_tail(model, blocks, np.quantile(q_adv, np.linspace(0, 1, QUANTILE_POINTS)), seed, rank)
    finetune(head, torch.cat(inputs), torch.from_numpy(normal_scores(target)).float(), epochs, seed)
    head.report = {"samples": len(paths), "blocks": blocks, "rank": rank, "tensors": len(head.tuned_parameters()), "epochs": epochs}
    return head, groups


def distill(score_files: list[str], model: FaceModel, model_name: str, output: str | Path, cache: str | Path, batch_size: int = 16,
            progress: bool = True, seed: int = 0, disjoint_from: tuple[str, ...] = (), refine: float = 0.0,
            finetune_blocks: int = 0, epochs: int = 3, finetune_rank: int = 0) -> Head:  # fmt: skip
    """Fit a student to the score files' labels (refined by identity with step ``refine``, see
    student.refine) and write it to ``output``: a ridge head on pooled features, or with
    ``finetune_blocks`` the model's last blocks fine-tuned (student.tail; only rank-``finetune_rank``
    changes of them where that is given); refuses labels of
    people ``disjoint_from``'s protocols judge on."""
    labels = read_labels(score_files, model)
    check_disjoint(labels, list(disjoint_from))
    if finetune_rank and not finetune_blocks:
        raise ValueError("--finetune-rank changes the blocks --finetune-blocks tunes: give both")
    if finetune_blocks:
        tail_split(model, finetune_blocks)  # refused here, before the long pass
        head, groups = fit_tail(labels, model, finetune_blocks, epochs, refine, batch_size, progress, seed, finetune_rank)
    else:
        data = training_set(labels, model, cache, batch_size, progress)
        embedding_size = model.spec.embedding_size or 0
        if refine and not embedding_size:
            raise ValueError(f"label refinement needs the model's embedding size, which {model_name!r} does not state")
        target = refine_labels(data.q_adv, data.features[:, -embedding_size - 1 : -1], data.groups, refine) if refine else data.q_adv
        head, groups = fit_head(data.features, target, data.groups, seed=seed), data.groups
    training = {"refine": refine, "disjoint_from": [Path(spec).name for spec in disjoint_from], "faces": int(groups.size), "people": int(np.unique(groups).size)}
    save_student(output, head, model_name, model.fingerprint(), labels.teacher, training)
    return head
