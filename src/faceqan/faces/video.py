"""Video files as frames. Each sampled frame is an input of its own, named
``clip.mp4#frame=N`` (N counts from 0), so rows, per-frame failures and ``--resume`` work as
they do for image files, and the best frame of a clip is the row with the highest quality.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from ..errors import DecodeError

VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv"})
FRAME_MARK = "#frame="


def is_video(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def frame_name(path: str, index: int) -> str:
    return f"{path}{FRAME_MARK}{index}"


def parse_frame_name(name: str) -> tuple[str, int] | None:
    """(video path, frame index) for a ``frame_name``; None for anything else."""
    path, mark, index = name.rpartition(FRAME_MARK)
    if not mark or not index.isdigit() or not is_video(path):
        return None
    return path, int(index)


def count_frames(path: str | Path) -> int:
    """Frames OpenCV can decode from the file (0 if it cannot open it). Counted by reading:
    the container's own frame count is an estimate in some formats."""
    capture = cv2.VideoCapture(str(path))
    try:
        count = 0
        while capture.isOpened() and capture.grab():
            count += 1
        return count
    finally:
        capture.release()


def expand_videos(paths: Iterable[str], frame_step: int = 1) -> list[str]:
    """Each video among ``paths`` replaced by the names of every ``frame_step``-th frame; a
    video with no readable frame stays as it is, and its row will say so."""
    if frame_step < 1:
        raise ValueError(f"frame step must be at least 1, got {frame_step}")
    expanded: list[str] = []
    for path in paths:
        frames = count_frames(path) if is_video(path) else 0
        expanded += [frame_name(path, i) for i in range(0, frames, frame_step)] if frames else [path]
    return expanded


class VideoFrames:
    """Reads frames by index, keeping the last video open: frames asked for in order are
    read on from where the last one ended; an earlier frame reopens the file."""

    def __init__(self) -> None:
        self._capture: cv2.VideoCapture | None = None
        self._path: str | None = None
        self._next = 0  # index of the frame the open capture reads next

    def read(self, path: str, index: int, max_pixels: int) -> np.ndarray:
        """Frame ``index`` of the video as (H, W, 3) uint8 RGB, or DecodeError saying why."""
        if path != self._path or index < self._next:
            self._open(path)
        assert self._capture is not None
        while self._next < index and self._capture.grab():
            self._next += 1
        ok, bgr = self._capture.read() if self._next == index else (False, None)
        if not ok or bgr is None:
            self._path = None  # the capture is spent: reopen next time
            raise DecodeError(f"cannot read frame {index}: the video ends after {self._next} frames, or is corrupt there")
        self._next += 1
        height, width = bgr.shape[:2]
        if height * width > max_pixels:
            raise DecodeError(f"frame is {width}x{height} = {width * height} pixels, over the limit of {max_pixels}")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def _open(self, path: str) -> None:
        self.close()
        if not Path(path).is_file():
            raise DecodeError("cannot read file: no such file")
        self._capture = cv2.VideoCapture(path)
        if not self._capture.isOpened():
            raise DecodeError("cannot open the video (corrupt or an unsupported format)")
        self._path, self._next = path, 0

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
        self._capture, self._path = None, None
