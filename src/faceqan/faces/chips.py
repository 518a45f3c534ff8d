"""Keep the aligned chips that were scored (``faceqan score --save-chips DIR``), named so that
each row's chip can be found: ``<stem>_<hash of the full path>_face<N>.png``."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np

from .prepare import FacePreparer, PreparedFace


def chip_name(path: str, face: int, suffix: str = ".png") -> str:
    """A file name for a face's picture, unique per (path, face): the input's stem (and video
    frame), the first 8 hex digits of the SHA-1 of the full path, the face index."""
    digest = hashlib.sha1(path.encode()).hexdigest()[:8]
    base, _, frame = path.partition("#frame=")
    stem = Path(base).stem + (f"_frame{frame}" if frame else "")
    return f"{stem}_{digest}_face{face}{suffix}"


def write_chip(chip: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.ascontiguousarray(chip[:, :, ::-1])):
        raise OSError(f"could not write {path}")


class ChipSaver:
    """A FacePreparer that also writes every aligned chip it makes under ``folder``."""

    def __init__(self, preparer: FacePreparer, folder: str | Path) -> None:
        self.preparer, self.folder = preparer, Path(folder)

    def __call__(self, path: str) -> list[PreparedFace]:
        faces = self.preparer(path)
        for face in faces:
            if face.chip is not None:
                write_chip(face.chip, self.folder / chip_name(face.path, face.face))
        return faces

    def settings(self) -> dict:
        return self.preparer.settings()
