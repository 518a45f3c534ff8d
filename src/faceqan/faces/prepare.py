"""Turn one image file into the aligned chips of its faces, per the model's spec and the face policy."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from ..errors import BadImageError, DecodeError, ItemError, ManyFacesError, NoFaceError
from ..spec import ModelSpec
from .align import align_face
from .decode import DEFAULT_MAX_PIXELS, decode_bytes, decode_image
from .detect import LANDMARKS_GIVEN, YuNetDetector
from .video import VideoFrames, is_video, parse_frame_name

FacePolicy = Literal["largest", "all", "error"]
FACE_POLICIES: tuple[str, ...] = ("largest", "all", "error")
# refined: each face's landmarks detected again at a fixed face scale and mirrored, averaged
# (YuNetDetector.refine_landmarks; docs/models.md has what it gains); single: the first detection's.
LANDMARK_MODES: tuple[str, ...] = ("refined", "single")


@dataclass
class PreparedFace:
    """One output row's input: an aligned chip, or the reason there is none."""

    path: str
    face: int = 0
    box: tuple[float, float, float, float] | None = None
    det_score: float | None = None
    landmarks: str = ""  # where the alignment's landmarks came from (detect.LANDMARKS_*); empty for aligned input
    chip: np.ndarray | None = None
    status: str = "ok"
    error: str = ""

    @classmethod
    def failed(cls, path: str, error: ItemError) -> PreparedFace:
        return cls(path, status=error.code, error=error.message)


class FacePreparer:
    """Decodes, detects and aligns; every problem becomes a failed PreparedFace, never an exception."""

    def __init__(
        self,
        spec: ModelSpec,
        aligned: bool = False,
        faces: FacePolicy = "largest",
        min_face_size: float = 0.0,
        min_det_score: float = 0.6,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        landmarks: str = "refined",
        given_landmarks: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        if faces not in FACE_POLICIES:
            raise ValueError(f"face policy must be one of {FACE_POLICIES}, got {faces!r}")
        if landmarks not in LANDMARK_MODES:
            raise ValueError(f"landmarks must be one of {LANDMARK_MODES}, got {landmarks!r}")
        self.spec, self.aligned, self.faces, self.landmarks = spec, aligned, faces, landmarks
        self.min_face_size, self.min_det_score, self.max_pixels = min_face_size, min_det_score, max_pixels
        self.detector = None if aligned else YuNetDetector(score_threshold=min_det_score, refine_landmarks=landmarks == "refined")
        self._videos = VideoFrames()
        # Images whose five landmarks come with the data set (IJB-C): aligned with them, not detected.
        self.given_landmarks = given_landmarks or {}

    def settings(self) -> dict:
        """The options that decide the chips (and so the scores)."""
        settings = {"aligned": self.aligned, "faces": self.faces, "landmarks": self.landmarks, "min_face_size": self.min_face_size, "min_det_score": self.min_det_score}
        return {**settings, "given_landmarks": len(self.given_landmarks)} if self.given_landmarks else settings

    def __call__(self, path: str) -> list[PreparedFace]:
        """Prepare an image file, or a video frame named by ``video.frame_name``."""
        try:
            rgb = self._decode(path)
        except ItemError as error:
            return [PreparedFace.failed(path, error)]
        if path in self.given_landmarks:
            size = self.spec.input_size
            return [PreparedFace(path, landmarks=LANDMARKS_GIVEN, chip=align_face(rgb, self.given_landmarks[path], self.spec.template, size))]
        return self.from_array(path, rgb)

    def _decode(self, path: str) -> np.ndarray:
        frame = parse_frame_name(path)
        if frame is not None:
            return self._videos.read(*frame, self.max_pixels)
        if is_video(path):  # collect_inputs / score_paths name a readable video's frames instead
            raise DecodeError("no frame could be read from this video (missing, corrupt, empty or an unsupported codec)")
        return decode_image(path, self.max_pixels)

    def from_bytes(self, name: str, data: bytes) -> list[PreparedFace]:
        """Prepare an encoded image held in memory (an upload); ``name`` goes in the path column."""
        try:
            rgb = decode_bytes(data, self.max_pixels)
        except ItemError as error:
            return [PreparedFace.failed(name, error)]
        return self.from_array(name, rgb)

    def from_array(self, name: str, rgb: np.ndarray) -> list[PreparedFace]:
        """Prepare an already decoded RGB uint8 image; ``name`` goes in the path column."""
        try:
            return self._aligned_input(name, rgb) if self.aligned else self._detect_and_align(name, rgb)
        except ItemError as error:
            return [PreparedFace.failed(name, error)]

    def _aligned_input(self, path: str, rgb: np.ndarray) -> list[PreparedFace]:
        size = self.spec.input_size
        height, width = rgb.shape[:2]
        if height != width:
            raise BadImageError(f"aligned input must be square ({size}x{size} for {self.spec.name}), got {width}x{height}")
        if height != size:
            rgb = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA if height > size else cv2.INTER_LINEAR)
        return [PreparedFace(path, chip=rgb)]

    def _detect_and_align(self, path: str, rgb: np.ndarray) -> list[PreparedFace]:
        assert self.detector is not None
        found = self.detector.detect(rgb)
        faces = [f for f in found if f.size >= self.min_face_size]
        if not faces:
            if found:
                raise NoFaceError(f"{len(found)} face(s) found, all smaller than {self.min_face_size:g} px")
            raise NoFaceError(f"no face found (detector score threshold {self.min_det_score:g})")
        if self.faces == "error" and len(faces) > 1:
            raise ManyFacesError(f"{len(faces)} faces found; face policy 'error' accepts exactly one")
        if self.faces != "all":
            faces = faces[:1]
        size = self.spec.input_size
        return [
            PreparedFace(path, i, face.box, face.score, face.landmarks_source, align_face(rgb, face.landmarks, self.spec.template, size))
            for i, face in enumerate(faces)
        ]
