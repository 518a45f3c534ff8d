"""FaceQAN as a quality method: the attack of ``faceqan.algorithm`` with the model's defaults."""

from __future__ import annotations

import torch
from torch import nn

from ..algorithm import FaceQAN, Variant
from .base import QualityMethod


class FaceQANMethod(QualityMethod):
    """FaceQAN's Q and its parts. ``eps=None``: the model's own eps (``faceqan models``)."""

    name = "faceqan"
    summary = "FaceQAN (ICPR 2022): adversarial drift of k noisy copies times flip similarity, to the power p"
    columns = ("quality", "mean_sim", "std_sim", "flip_sim", "q_adv")

    def __init__(
        self, model: nn.Module, eps: float | None = None, steps: int = 5, copies: int = 10, power: float = 5,
        variant: Variant = "paper", seed: int = 0,
    ) -> None:  # fmt: skip
        super().__init__(model)
        self.scorer = FaceQAN(model, eps, steps, copies, power, variant, seed)

    @classmethod
    def from_scorer(cls, scorer: FaceQAN) -> FaceQANMethod:
        """Wrap a FaceQAN scorer made by hand."""
        method = cls.__new__(cls)
        QualityMethod.__init__(method, scorer.model)
        method.scorer = scorer
        return method

    def compute(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        parts = self.scorer(images)
        return {name: getattr(parts, name) for name in self.columns}

    score_options = ("eps", "steps", "copies", "power", "variant", "seed")

    def options(self) -> dict:
        s = self.scorer
        return {"eps": s.eps, "steps": s.steps, "copies": s.copies, "power": s.power, "variant": s.variant, "seed": s.seed}

    def evaluation_columns(self) -> dict[str, str]:
        return {"faceqan": "quality", "faceqan q_adv (no symmetry)": "q_adv", "s_f (from faceqan)": "flip_sim"}

    def default_batch_size(self) -> int:
        """On the CPU, one image per core up to 8 for models scored faster side by side
        (``spec.cpu_lanes``: dlib; faceqan/lanes.py), else 1; 32 on a GPU."""
        if self.device.type != "cpu":
            return 32
        spec = getattr(self.model, "spec", None)
        return min(torch.get_num_threads(), 8) if getattr(spec, "cpu_lanes", False) else 1
