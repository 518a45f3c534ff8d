"""The recipe a distributed run sends to its workers: how to rebuild its model, its quality
method and its face preparation, so every worker scores exactly as a local run would."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..faces.prepare import FacePreparer
from ..methods import QualityMethod, create_method
from ..models import BUILTIN_MODELS, create_model
from ..models.spec import FaceModel, ModelSpec
from ..scale import QualityScale


@dataclass(frozen=True)
class ScoringJob:
    """``model``: a built-in name or a model file (``model_options`` read it, as ``--arch`` etc.);
    a file must be at the same path on every node. ``method`` and ``method_options`` as in
    ``faceqan.create_method``; ``method_factory`` (pickled to the workers) builds a method of
    your own from the model instead. ``preparation``: ``FacePreparer``'s keyword options
    (aligned, faces, min_face_size, min_det_score, max_pixels, landmarks)."""

    model: str = "dlib"
    model_options: dict = field(default_factory=dict)
    method: str = "faceqan"
    method_options: dict = field(default_factory=dict)
    scale: QualityScale | None = None
    preparation: dict = field(default_factory=dict)
    method_factory: Callable[[FaceModel], QualityMethod] | None = None

    def build_model(self, device: str = "cpu") -> FaceModel:
        return create_model(self.model, device, **self.model_options)

    def model_spec(self) -> ModelSpec:
        """The model's input spec, without loading weights where the model is built in."""
        if self.model in BUILTIN_MODELS:
            return BUILTIN_MODELS[self.model]()[0]
        return self.build_model().spec

    def build_method(self, model: FaceModel) -> QualityMethod:
        method = self.method_factory(model) if self.method_factory else create_method(self.method, model, **self.method_options)
        if self.scale is not None:
            method.use_scale(self.scale)
        return method

    def build_preparer(self, spec: ModelSpec) -> FacePreparer:
        return FacePreparer(spec, **self.preparation)
