"""The interface every quality method shares: an object called on aligned batches."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from ..algorithm import check_images, model_device
from ..scale import QualityScale
from ..sinks import FACEQAN_COLUMNS


class QualityMethod(ABC):
    """A face quality method bound to one FR model.

    Called on a batch of aligned faces (N, 3, S, S), RGB in [-1, 1], it returns one tensor of
    N values per name in ``columns`` (``quality`` first, higher is better), on the CPU.
    ``settings()`` holds every option that decides its values: it keys caches and resumes.
    """

    name: ClassVar[str]
    summary: ClassVar[str] = ""  # one line for `faceqan methods`
    columns: ClassVar[tuple[str, ...]] = ("quality",)
    # The keys of ``options()`` that decide a score (with the model's weights and the method's name):
    # what resumes, scales and distillation compare. A student's file path does not; its hash does.
    score_options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, model: nn.Module | None) -> None:
        self.model = model
        self.scale: QualityScale | None = None  # maps quality to 0-100 (faceqan/scale.py); None: that column stays empty

    @property
    def output_columns(self) -> tuple[str, ...]:
        """The columns of a result row: the method's, then ``quality_0_100`` for quality methods."""
        return (*self.columns, "quality_0_100") if "quality" in self.columns else self.columns

    def scale_settings(self) -> dict:
        """What decides this method's scores, so what a 0-100 scale must have been fitted for: the
        model's weights, the method and its ``score_options``."""
        fingerprint = getattr(self.model, "fingerprint", None)
        options = self.options()
        return {"model_sha256": fingerprint() if fingerprint else None, "method": self.name, **{key: options[key] for key in self.score_options}}

    def use_scale(self, scale: QualityScale) -> None:
        """Report quality on ``scale`` too; refused when the scale belongs to other weights or settings."""
        run = self.scale_settings()
        if not scale.matches(run):
            differ = sorted(k for k, v in scale.settings.items() if run.get(k) != v)
            raise ValueError(f"the 0-100 scale was fitted for other settings ({', '.join(differ)} differ): fit one for these with `faceqan scale`")
        self.scale = scale

    @property
    def device(self) -> torch.device:
        return model_device(self.model) if self.model is not None else torch.device("cpu")

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.score_and_embed(images)[0]

    def score_and_embed(self, images: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """The columns, and each face's FR embedding where the method computes it anyway (a
        ``compute`` output named ``embedding``; else None): what tracking needs, for free."""
        check_images(images)
        columns = self.compute(images.to(self.device))
        out = {name: columns[name].detach().cpu() for name in self.columns}
        if "quality" in out:
            scaled = self.scale(out["quality"].double().numpy()) if self.scale is not None else np.full(images.shape[0], np.nan)
            out["quality_0_100"] = torch.from_numpy(np.asarray(scaled, np.float64))
        embedding = columns.get("embedding")
        return out, None if embedding is None else embedding.detach().float().cpu()

    @abstractmethod
    def compute(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The columns for a checked batch already on ``device``."""

    def options(self) -> dict:
        """The method's own options (eps, seed, ...), JSON-serialisable."""
        return {}

    def settings(self) -> dict:
        return {"method": self.name, **self.options()}

    def describe(self) -> str:
        options = ", ".join(f"{key} {value}" for key, value in self.options().items())
        return f"{self.name}" + (f" ({options})" if options else "")

    def evaluation_columns(self) -> dict[str, str]:
        """What ``faceqan evaluate`` reports for this method: label -> column."""
        return {self.name: "quality"}

    def default_batch_size(self) -> int:
        """Images per batch: 32 on a GPU, 1 on the CPU (methods scored side by side say otherwise)."""
        return 32 if self.device.type != "cpu" else 1


class CallableMethod(QualityMethod):
    """A bare callable (a batch (N, 3, S, S) in [-1, 1] -> {column: N values}) behind the
    QualityMethod contract; its ``device``, ``columns`` and ``output_columns`` attributes, where
    it has them, say where batches go and what a row holds (default: the CPU, FaceQAN's columns).
    Its output is used as it is."""

    name = "callable"

    def __init__(self, function: Callable[[torch.Tensor], dict[str, torch.Tensor]]) -> None:
        super().__init__(None)
        self.function = function
        self.columns = tuple(getattr(function, "columns", ("quality",)))
        self._device = torch.device(getattr(function, "device", "cpu"))
        self._output_columns = getattr(function, "output_columns", None)

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def output_columns(self) -> tuple[str, ...]:
        # Without its own list, the row has FaceQAN's columns (what a FaceQAN-like scorer returns).
        return tuple(self._output_columns) if self._output_columns is not None else FACEQAN_COLUMNS

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.function(images)

    def score_and_embed(self, images: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        return self.function(images), None

    def compute(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.function(images)


def as_method(method: QualityMethod | Callable[[torch.Tensor], dict[str, torch.Tensor]]) -> QualityMethod:
    """``method`` itself, or a bare callable wrapped once in the contract (``CallableMethod``)."""
    return method if isinstance(method, QualityMethod) else CallableMethod(method)


def file_for_model(model: nn.Module | None, given: str | None, shipped: Callable[[str], Path | None], error: type[Exception],
                   user: str, missing: str, how: str) -> tuple[Path, str]:  # fmt: skip
    """The per-model file a method reads (``given``, else the one ``shipped`` for the model) and
    the model's weights' SHA-256 that the file must name; ``error`` says what is wrong."""
    spec, fingerprint = getattr(model, "spec", None), getattr(model, "fingerprint", None)
    if spec is None or fingerprint is None:
        raise error(f"{user} needs a faceqan FaceModel (faceqan.create_model, or models.custom.from_module)")
    path = Path(given) if given else shipped(spec.name)
    if path is None:
        raise error(f"no {missing} shipped for the model {spec.name!r}: {how}")
    return path, fingerprint()
