"""From input paths to result rows: collect files, prepare faces, batch, score, stream.

Preparation (decode, detect, align) of the next batch runs in a background thread while
the current batch is scored, so the CPU-bound attack is not kept waiting on I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .faces.prepare import FacePreparer, PreparedFace
from .faces.video import expand_videos
from .methods.base import QualityMethod, as_method

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm", ".pgm", ".jfif"})
LIST_SUFFIXES = frozenset({".txt", ".lst", ".list"})

# A scoring method: a methods.QualityMethod, or a bare callable (a batch of aligned faces
# (N, 3, S, S) in [-1, 1] -> columns of N values) that ``as_method`` wraps once on the way in.
Method = QualityMethod | Callable[[torch.Tensor], dict[str, torch.Tensor]]


def collect_inputs(inputs: Iterable[str | Path], frame_step: int = 1) -> list[str]:
    """Expand files, folders (recursive, image suffixes) and text files listing paths.

    Files named directly are kept whatever their suffix (a bad one gets its error row);
    a list file's relative paths are taken relative to the list's folder. Video files named
    directly or listed become one input per ``frame_step``-th frame (faces/video.py). Order
    is kept, duplicates dropped.
    """
    found: list[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found += sorted(str(p) for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.suffix.lower() in LIST_SUFFIXES and path.is_file():
            lines = [line.strip() for line in path.read_text().splitlines()]
            found += [str(p if (p := Path(line)).is_absolute() else path.parent / p) for line in lines if line and not line.startswith("#")]
        elif path.exists():
            found.append(str(path))
        else:
            raise FileNotFoundError(f"input not found: {path}")
    return expand_videos(dict.fromkeys(found), frame_step)


def chips_to_tensor(chips: list[np.ndarray]) -> torch.Tensor:
    """Stack RGB uint8 chips (S, S, 3) into (N, 3, S, S) float in [-1, 1]."""
    array = np.stack(chips).astype(np.float32)
    return torch.from_numpy(array).permute(0, 3, 1, 2).div(127.5).sub(1.0).contiguous()


def prepared_batches(paths: Iterable[str], preparer: FacePreparer, batch_size: int) -> Iterator[list[PreparedFace]]:
    """Groups of whole images whose faces number about ``batch_size`` chips, prepared
    one group ahead in a background thread."""

    def groups() -> Iterator[list[str]]:
        group: list[str] = []
        for path in paths:
            group.append(path)
            if len(group) >= batch_size:
                yield group
                group = []
        if group:
            yield group

    def prepare(group: list[str]) -> list[PreparedFace]:
        return [face for path in group for face in preparer(path)]

    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = None
        for group in groups():
            future = pool.submit(prepare, group)
            if pending is not None:
                yield pending.result()
            pending = future
        if pending is not None:
            yield pending.result()


@dataclass
class BatchLimit:
    """The most chips scored at once; lowered when a batch runs out of device memory, so that
    the batches after it start at a size that fits. One per run or service."""

    size: int | None = None  # None: no limit met yet


def _method_columns(chips: list[np.ndarray], method: Method, device: torch.device, limit: BatchLimit | None = None) -> list[dict[str, float] | str]:
    """Per chip, its method values, or the error message when the model fails on it.

    A failing batch is retried in halves, down to single chips, so one bad input cannot sink
    the others, and a batch too large for the GPU's memory runs as smaller ones (``limit``
    remembers that size for the next batches)."""
    if limit is not None and limit.size is not None and len(chips) > limit.size:
        return [value for start in range(0, len(chips), limit.size) for value in _method_columns(chips[start : start + limit.size], method, device, limit)]
    try:
        result = method(chips_to_tensor(chips).to(device))
        columns = {name: values.tolist() for name, values in result.items()}
        return [{name: values[i] for name, values in columns.items()} for i in range(len(chips))]
    except (ValueError, RuntimeError) as exc:
        if len(chips) == 1:
            return [f"{type(exc).__name__}: {exc}"]
        half = len(chips) // 2
        if isinstance(exc, torch.OutOfMemoryError):
            torch.cuda.empty_cache()  # hand the failed batch's cached blocks back before retrying
            if limit is not None:
                limit.size = half
        return _method_columns(chips[:half], method, device, limit) + _method_columns(chips[half:], method, device, limit)


def score_batch(faces: list[PreparedFace], method: Method, limit: BatchLimit | None = None) -> list[dict]:
    """Result rows for one batch: the method's columns for ok faces, the error for others."""
    method = as_method(method)
    device = method.device
    ok = [face for face in faces if face.chip is not None]
    values = iter(_method_columns([face.chip for face in ok], method, device, limit) if ok else [])
    rows = []
    for face in faces:
        row = {"path": face.path, "face": face.face, "box": _box_text(face.box), "det_score": face.det_score, "landmarks": face.landmarks}
        status, error = face.status, face.error
        if face.chip is not None:
            columns = next(values)
            if isinstance(columns, str):
                status, error = "score_error", columns
            else:
                row.update(columns)
        row.update(status=status, error=error)
        rows.append(row)
    return rows


def score_stream(paths: Iterable[str], preparer: FacePreparer, method: Method, batch_size: int) -> Iterator[list[dict]]:
    """The one batch loop of every entry point: result rows batch by batch, the next batch
    prepared while this one is scored; a batch too large for the device's memory makes the
    batches after it smaller."""
    limit, method = BatchLimit(), as_method(method)
    for faces in prepared_batches(paths, preparer, batch_size):
        yield score_batch(faces, method, limit)


def _box_text(box: tuple[float, float, float, float] | None) -> str:
    return "" if box is None else " ".join(f"{v:.1f}" for v in box)
