"""The distilled student as a quality method: FaceQAN's Q from one forward pass of the face
and its mirror image (the mirror gives s_f exactly, the head predicts q_adv)."""

from __future__ import annotations

import hashlib

import torch
from torch import nn

from ..student.files import StudentFileError, builtin_student, load_student
from ..student.net import StudentNet
from .base import QualityMethod, file_for_model


class StudentMethod(QualityMethod):
    """``student``: a file from ``faceqan distill``; default: the one shipped for the model."""

    name = "faceqan-student"
    summary = "FaceQAN distilled to one forward pass (s_f exact, q_adv predicted by a ridge head or fine-tuned last blocks)"
    columns = ("quality", "flip_sim", "q_adv")

    def __init__(self, model: nn.Module, student: str | None = None) -> None:
        super().__init__(model)
        path, _ = file_for_model(model, student, builtin_student, StudentFileError, "the student", "student is", "train one with `faceqan distill` and pass --student FILE")
        self.path = path
        self.source = student or f"built-in {path.name}"  # what reports name: no machine's install path
        self.head, self.meta = load_student(path, model)
        self.sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
        self.power = float(self.meta["teacher"].get("power", 5))
        self.model.eval().requires_grad_(False).to(memory_format=torch.channels_last)  # NHWC: faster on CPUs, as for FaceQAN
        self.net = StudentNet(self.model, self.head, self.power).to(self.device).eval().requires_grad_(False)

    def default_batch_size(self) -> int:
        """One forward pass per face and mirror: batches amortise the per-call cost (16 on the CPU, 64 on a GPU)."""
        return 64 if self.device.type != "cpu" else 16

    def compute(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            quality, flip_sim, q_adv, embedding = self.net(images)
        return {"quality": quality, "flip_sim": flip_sim, "q_adv": q_adv, "embedding": embedding}

    score_options = ("student_sha256",)

    def options(self) -> dict:
        return {"student": self.source, "student_sha256": self.sha256}

    def evaluation_columns(self) -> dict[str, str]:
        return {"faceqan-student": "quality"}
