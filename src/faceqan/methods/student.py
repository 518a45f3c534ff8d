"""The distilled student as a quality method: FaceQAN's Q from one forward pass of the face
and its mirror image (the mirror gives s_f exactly, the head predicts q_adv)."""

from __future__ import annotations

import hashlib

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..student.features import features_and_embedding
from ..student.files import StudentFileError, builtin_student, load_student
from .base import QualityMethod, file_for_model


class StudentMethod(QualityMethod):
    """``student``: a file from ``faceqan distill``; default: the one shipped for the model."""

    name = "faceqan-student"
    summary = "FaceQAN distilled to one forward pass (s_f exact, q_adv predicted from pooled features)"
    columns = ("quality", "flip_sim", "q_adv")

    def __init__(self, model: nn.Module, student: str | None = None) -> None:
        super().__init__(model)
        path, weights = file_for_model(model, student, builtin_student, StudentFileError, "the student", "student is", "train one with `faceqan distill` and pass --student FILE")
        self.path = path
        self.source = student or f"built-in {path.name}"  # what reports name: no machine's install path
        self.head, self.meta = load_student(path, weights)
        self.sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
        self.power = float(self.meta["teacher"].get("power", 5))
        self.model.eval().requires_grad_(False).to(memory_format=torch.channels_last)  # NHWC: faster on CPUs, as for FaceQAN

    def default_batch_size(self) -> int:
        """One forward pass per face and mirror: batches amortise the per-call cost (16 on the CPU, 64 on a GPU)."""
        return 64 if self.device.type != "cpu" else 16

    def compute(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        n = images.shape[0]
        both = torch.cat([images, images.flip(-1)]).contiguous(memory_format=torch.channels_last)
        features, embedding = features_and_embedding(self.model, both)
        flip_sim = F.cosine_similarity(embedding[:n], embedding[n:])
        q_adv = torch.from_numpy(self.head.predict(features[:n].cpu().double().numpy()).astype(np.float32)).to(flip_sim.device)
        return {"quality": (q_adv * flip_sim).clamp_min(0) ** self.power, "flip_sim": flip_sim, "q_adv": q_adv, "embedding": embedding[:n]}

    score_options = ("student_sha256",)

    def options(self) -> dict:
        return {"student": self.source, "student_sha256": self.sha256}

    def evaluation_columns(self) -> dict[str, str]:
        return {"faceqan-student": "quality"}
