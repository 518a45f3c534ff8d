"""The student's whole computation in torch: aligned chips -> quality, s_f, q_adv and the
embedding, from one forward pass of the face and its mirror (the mirror gives s_f exactly, the
head predicts q_adv). ``StudentMethod`` calls it; the ONNX export traces it."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .features import features_and_embedding
from .head import RidgeHead, RidgeModule
from .tail import TailHead, tail_input_of


class StudentNet(nn.Module):
    """``model`` with a student's head: a ridge head on pooled features, or a fine-tuned tail."""

    def __init__(self, model: nn.Module, head: RidgeHead | TailHead, power: float) -> None:
        super().__init__()
        self.model, self.power = model, power
        self.head = head if isinstance(head, TailHead) else RidgeModule(head)

    def forward(self, chips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(quality, flip_sim, q_adv, embedding) of each chip."""
        n = chips.shape[0]
        both = torch.cat([chips, chips.flip(-1)])
        if not torch.jit.is_tracing():
            both = both.contiguous(memory_format=torch.channels_last)  # NHWC: faster on CPUs, as for FaceQAN
        if isinstance(self.head, TailHead):
            with tail_input_of(self.model, self.head.split) as seen:
                embedding = self.model(both)
            q_adv = self.head(seen[0][:n].float())
        else:
            features, embedding = features_and_embedding(self.model, both)
            q_adv = self.head(features[:n])
        flip_sim = F.cosine_similarity(embedding[:n], embedding[n:])
        return (q_adv * flip_sim).clamp_min(0) ** self.power, flip_sim, q_adv, embedding[:n]
