"""Score photos with a student exported by `faceqan export`, needing only onnxruntime, OpenCV and
NumPy at run time (no PyTorch, Pillow or scikit-image): YuNet detection with refined landmarks
(faces/detect.py), the similarity alignment of faces/align.py to the template the file carries,
the graph.

    >>> scorer = LiteScorer("student.onnx")
    >>> scorer.score_file("photo.jpg")      # [{"face": 0, "box": (x, y, w, h), "quality": ..., ...}]

    python -m faceqan.lite student.onnx photo.jpg more.jpg      # CSV rows on standard output
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from .faces.align import similarity_matrix, warp
from .faces.detect import YuNetDetector

METADATA_KEY = "faceqan"  # the export's custom metadata: model, input size, template


class LiteScorer:
    """An exported student and the detection and alignment its chips need."""

    def __init__(self, onnx_file: str | Path, min_det_score: float = 0.6, all_faces: bool = False) -> None:
        import onnxruntime

        self.session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
        found = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        if found is None:
            raise ValueError(f"{onnx_file}: no faceqan metadata; export the student with `faceqan export`")
        meta = json.loads(found)
        self.model, self.size, self.template = meta["model"], int(meta["input_size"]), np.array(meta["template"], np.float64)
        self.detector = YuNetDetector(score_threshold=min_det_score, refine_landmarks=True)
        self.all_faces = all_faces

    def score_image(self, rgb: np.ndarray) -> list[dict]:
        """A row per face (the largest only unless ``all_faces``) of an RGB uint8 image."""
        faces = self.detector.detect(rgb)
        faces = faces if self.all_faces else faces[:1]
        if not faces:
            return []
        chips = [warp(rgb, similarity_matrix(f.landmarks, self.template), self.size) for f in faces]
        batch = (np.stack(chips).astype(np.float32).transpose(0, 3, 1, 2) / 127.5) - 1.0
        quality, flip_sim, q_adv = self.session.run(["quality", "flip_sim", "q_adv"], {"chips": batch})
        return [
            {"face": i, "box": tuple(round(float(v), 1) for v in f.box), "quality": float(quality[i]), "flip_sim": float(flip_sim[i]), "q_adv": float(q_adv[i])}
            for i, f in enumerate(faces)
        ]

    def score_file(self, path: str | Path) -> list[dict]:
        """A row per face of an image file; a file OpenCV cannot read is a ValueError."""
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"{path}: not an image OpenCV can read")
        return self.score_image(np.ascontiguousarray(bgr[:, :, ::-1]))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2:
        print("usage: python -m faceqan.lite STUDENT.onnx IMAGE...", file=sys.stderr)
        return 2
    scorer = LiteScorer(args[0])
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(["path", "face", "box", "quality", "flip_sim", "q_adv", "status", "error"])
    for path in args[1:]:
        try:
            rows = scorer.score_file(path)
        except ValueError as error:
            out.writerow([path, 0, "", "", "", "", "decode_error", str(error)])
            continue
        if not rows:
            out.writerow([path, 0, "", "", "", "", "no_face", ""])
        for row in rows:
            box = " ".join(f"{v:.1f}" for v in row["box"])
            out.writerow([path, row["face"], box, f"{row['quality']:.6f}", f"{row['flip_sim']:.6f}", f"{row['q_adv']:.6f}", "ok", ""])
    return 0


if __name__ == "__main__":
    sys.exit(main())
