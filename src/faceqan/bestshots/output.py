"""``faceqan pick``'s output folder: per source a sub-folder with each track's best aligned crops
(PNG) and whole frames (JPEG), and one ``picks.csv`` for all of them. A track's row is written
(and flushed) only after its files, so an interrupted run keeps every track it wrote."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import cv2
import numpy as np

from .picker import PickedTrack

COLUMNS = ("source", "track", "rank", "frame", "time", "box", "quality", "quality_0_100", "status", "crop", "frame_file", "track_faces", "track_start", "track_end")


def source_label(source: str) -> str:
    """A folder name for a source: a file's stem, ``camera0``, or the stream's host."""
    if source.isdigit():
        return f"camera{source}"
    if "://" in source:
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", source.split("://", 1)[1].split("/", 1)[0]) or "stream"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(source.rstrip("/")).stem) or "source"


class PickWriter:
    """Writes tracks as they come; ``rows`` and ``tracks`` count what was written."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / "picks.csv"
        self._file = self.path.open("w", newline="", encoding="utf-8")
        self._csv = csv.DictWriter(self._file, fieldnames=COLUMNS)
        self._csv.writeheader()
        self._file.flush()
        self._labels: dict[str, str] = {}
        self.rows = self.tracks = 0

    def _label(self, source: str) -> str:
        if source not in self._labels:
            label, taken = source_label(source), set(self._labels.values())
            number = 2
            while label in taken:
                label, number = f"{source_label(source)}-{number}", number + 1
            self._labels[source] = label
        return self._labels[source]

    def write(self, track: PickedTrack) -> None:
        folder = self.folder / self._label(track.source)
        folder.mkdir(exist_ok=True)
        common = {"source": track.source, "track": track.track, "track_faces": track.faces, "track_start": f"{track.first_time:.3f}", "track_end": f"{track.last_time:.3f}"}
        rows = []
        for rank, shot in enumerate(track.shots, 1):
            stem = f"track{track.track:04d}_{rank}"
            crop, image = folder / f"{stem}_crop.png", folder / f"{stem}_frame.jpg"
            _write_image(crop, shot.crop)
            _write_image(image, shot.image)
            rows.append({
                **common, "rank": rank, "frame": shot.frame, "time": f"{shot.time:.3f}", "box": " ".join(f"{v:.1f}" for v in shot.box),
                "quality": f"{shot.quality:.6g}", "quality_0_100": "" if shot.quality_0_100 is None else f"{shot.quality_0_100:.1f}", "status": "ok",
                "crop": str(crop.relative_to(self.folder)), "frame_file": str(image.relative_to(self.folder)),
            })  # fmt: skip
        if not rows:
            rows.append({**common, "quality": f"{track.best_quality:.6g}", "status": "below_min_quality"})
        self._csv.writerows(rows)
        self._file.flush()
        self.rows += len(rows)
        self.tracks += 1

    def close(self) -> None:
        self._file.close()


def _write_image(path: Path, rgb: np.ndarray) -> None:
    if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[:, :, ::-1])):
        raise OSError(f"cannot write {path}")
