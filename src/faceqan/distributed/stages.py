"""The two stages of a distributed run, as Ray Data batch functions on Arrow tables:
preparation (decode, detect, align) as CPU tasks, one row per image holding its prepared faces;
scoring in an actor that loads the model once, one row per face, faceqan's output columns.

An image's faces travel together, so its rows land in the same output file (what --resume
counts on). Between the two stages a face is plain Arrow data, no pickle: its fields, and its
chip as the raw uint8 bytes of an (S, S, 3) array; each row names its layout (``FACES_LAYOUT``,
in a column: Ray Data may drop a table's schema metadata) and the scoring stage refuses another.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import torch

from ..faces.prepare import FacePreparer, PreparedFace
from ..models.spec import ModelSpec
from ..pipeline import BatchLimit, score_batch
from ..sinks import row_columns, rows_table
from .job import ScoringJob

# CPUs Ray reserves per preparation (and writing) task: a fraction, so that a scoring actor reserving most of a
# node's CPUs leaves room for the images it is waiting for (a pool reserving every CPU stalls them).
PREPARE_CPUS = 0.5

FACES_LAYOUT = "faceqan-prepared-faces/1"  # the prepared table's "layout" column
FACE_TYPE = pa.struct([
    ("face", pa.int32()), ("box", pa.list_(pa.float64())), ("det_score", pa.float64()), ("landmarks", pa.string()),
    ("chip", pa.binary()), ("chip_size", pa.int32()), ("status", pa.string()), ("error", pa.string()),
])  # fmt: skip

_preparers: dict[str, FacePreparer] = {}  # per worker process: one detector per set of options


def _preparer(job: ScoringJob, spec: ModelSpec) -> FacePreparer:
    key = json.dumps([spec.name, spec.input_size, spec.template.tolist(), job.preparation], sort_keys=True)
    if key not in _preparers:
        _preparers[key] = job.build_preparer(spec)
    return _preparers[key]


def prepare_images(batch: pa.Table, job: ScoringJob, spec: ModelSpec) -> pa.Table:
    """``path`` (and optionally the encoded image in ``bytes``) -> ``path`` and ``faces``
    (the image's PreparedFaces as FACE_TYPE records; a bad image is one failed face) and ``layout``."""
    preparer = _preparer(job, spec)
    paths = batch.column("path").to_pylist()
    data = batch.column("bytes").to_pylist() if "bytes" in batch.column_names else [None] * len(paths)
    prepared = [preparer(path) if blob is None else preparer.from_bytes(path, blob) for path, blob in zip(paths, data)]
    faces = pa.array([[_face_record(face) for face in image] for image in prepared], pa.list_(FACE_TYPE))
    return pa.table({"path": pa.array(paths, pa.string()), "faces": faces, "layout": pa.array([FACES_LAYOUT] * len(paths), pa.string())})


def _face_record(face: PreparedFace) -> dict:
    chip = face.chip
    return {
        "face": face.face, "box": list(face.box) if face.box is not None else None, "det_score": face.det_score,
        "landmarks": face.landmarks, "chip": None if chip is None else np.ascontiguousarray(chip, np.uint8).tobytes(),
        "chip_size": None if chip is None else chip.shape[0], "status": face.status, "error": face.error,
    }  # fmt: skip


def read_faces(batch: pa.Table) -> list[PreparedFace]:
    """The PreparedFaces of a prepared table, image after image; another layout is refused."""
    layouts = set(batch.column("layout").to_pylist()) if "layout" in batch.column_names else {None}
    if layouts != {FACES_LAYOUT}:
        raise ValueError(f"prepared faces in layout {sorted(map(str, layouts))}; this faceqan reads {FACES_LAYOUT!r}")
    faces = []
    for path, records in zip(batch.column("path").to_pylist(), batch.column("faces").to_pylist()):
        for r in records:
            chip = None if r["chip"] is None else np.frombuffer(r["chip"], np.uint8).reshape(r["chip_size"], r["chip_size"], 3).copy()
            box = tuple(r["box"]) if r["box"] is not None else None
            faces.append(PreparedFace(path, r["face"], box, r["det_score"], r["landmarks"], chip, r["status"], r["error"]))
    return faces


class ScoreFaces:
    """The actor's callable: builds the job's model and method once, then scores batches of
    prepared images into result rows (``pipeline.score_batch``, as a local run does)."""

    def __init__(self, job: ScoringJob, device: str, threads: int | None, batch_size: int | None) -> None:
        if threads:
            torch.set_num_threads(threads)
        self.method = job.build_method(job.build_model(device))
        self.columns = row_columns(self.method.output_columns)
        self.batch_size = batch_size or self.method.default_batch_size()
        self.limit = BatchLimit()

    def __call__(self, batch: pa.Table) -> pa.Table:
        faces = read_faces(batch)
        rows = []
        for start in range(0, len(faces), self.batch_size):
            rows += score_batch(faces[start : start + self.batch_size], self.method, self.limit)
        return rows_table(rows, self.columns)
