"""Where ``faceqan pick`` reads frames: a video file, a folder of frame images, or a live
source (a camera index or a stream URL), all through OpenCV. Each source is checked when it is
opened, so an unreadable one is refused before any work; a source that stops later ends the
stream with the reason in ``stop_reason``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import ItemError
from ..faces.decode import decode_image
from ..faces.video import is_video
from ..pipeline import IMAGE_SUFFIXES

FOLDER_FPS = 25.0  # the time of a folder's frames: index / FOLDER_FPS unless --fps says otherwise
LIVE_RETRIES = 25  # failed reads in a row (0.2 s apart) before a live source counts as stopped
LIVE_RETRY_WAIT_S = 0.2


class SourceError(ValueError):
    """A source that cannot be read at all (the message says which and why)."""


@dataclass
class Frame:
    """One sampled frame: its index in the source, its time in seconds, RGB uint8 pixels."""

    index: int
    time: float
    rgb: np.ndarray


def is_live(source: str) -> bool:
    """A camera index (``0``) or a stream URL (rtsp://, http://, ...), not a file or folder."""
    return source.isdigit() or "://" in source


class FrameSource:
    """Frames of one source, every ``frame_step``-th; ``stop_reason`` says why they ended."""

    def __init__(self, source: str, frame_step: int = 1, fps: float | None = None, max_pixels: int = 50_000_000) -> None:
        if frame_step < 1:
            raise SourceError(f"frame step must be at least 1, got {frame_step}")
        self.name, self.frame_step, self.max_pixels = source, frame_step, max_pixels
        self.live = is_live(source)
        self.stop_reason = ""
        self.skipped: list[tuple[str, str]] = []  # (frame file, why) for a folder's unreadable frames
        self._files: list[Path] = []
        self._capture: cv2.VideoCapture | None = None
        path = Path(source)
        if not self.live and path.is_dir():
            self._files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            self.fps = fps or FOLDER_FPS
            return
        if not self.live and not path.is_file():
            raise SourceError(f"{source}: no such file or folder")
        if not self.live and not is_video(path):
            raise SourceError(f"{source}: not a video file, a folder of frames, a camera index or a stream URL")
        self._capture = cv2.VideoCapture(int(source) if source.isdigit() else source)
        if not self._capture.isOpened():
            raise SourceError(f"{source}: cannot open it (no such camera, unreachable stream, or a corrupt or unsupported video)")
        reported = self._capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps or (reported if reported and 0 < reported < 1000 else FOLDER_FPS)
        self._first: np.ndarray | None = None
        if not self.live:  # a file that opens but holds no frame is as unreadable as one that does not open
            ok, bgr = self._capture.read()
            if not ok or bgr is None:
                self.close()
                raise SourceError(f"{source}: no frame could be read (empty, corrupt or an unsupported codec)")
            self._first = bgr

    def __iter__(self) -> Iterator[Frame]:
        try:
            yield from (self._folder_frames() if self._capture is None else self._capture_frames())
        finally:
            self.close()

    def _folder_frames(self) -> Iterator[Frame]:
        for index in range(0, len(self._files), self.frame_step):
            try:
                rgb = decode_image(str(self._files[index]), self.max_pixels)
            except ItemError as error:
                self.skipped.append((str(self._files[index]), error.message))
                continue
            yield Frame(index, index / self.fps, rgb)
        self.stop_reason = f"end of the folder ({len(self._files)} frames)"

    def _capture_frames(self) -> Iterator[Frame]:
        capture, index, failures = self._capture, 0, 0
        assert capture is not None
        while True:
            wanted = index % self.frame_step == 0
            if self._first is not None:
                ok, bgr, self._first = True, self._first, None
            elif wanted:
                ok, bgr = capture.read()
            else:
                ok, bgr = capture.grab(), None  # a skipped frame: demuxed and decoded, not converted
            if not ok:
                if self.live and failures < LIVE_RETRIES:
                    failures += 1
                    time.sleep(LIVE_RETRY_WAIT_S)
                    continue
                self.stop_reason = (
                    f"the source stopped sending frames after {index} (camera unplugged or stream ended)" if self.live else f"end of the video ({index} frames)"
                )
                return
            failures = 0
            if wanted and bgr is not None:
                yield Frame(index, index / self.fps, self._checked_rgb(bgr))
            index += 1

    def _checked_rgb(self, bgr: np.ndarray) -> np.ndarray:
        height, width = bgr.shape[:2]
        if height * width > self.max_pixels:
            raise SourceError(f"{self.name}: frames are {width}x{height}, over the limit of {self.max_pixels} pixels")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None
