"""The two stages of a distributed run, as Ray Data batch functions on Arrow tables:
preparation (decode, detect, align) as CPU tasks, one row per image holding its prepared faces;
scoring in an actor that loads the model once, one row per face, faceqan's output columns.

An image's faces travel together, so its rows land in the same output file (what --resume
counts on). Prepared faces are pickled between the two stages: both sides are faceqan.
"""

from __future__ import annotations

import json
import pickle

import pyarrow as pa
import torch

from ..faces.prepare import FacePreparer
from ..models.spec import ModelSpec
from ..pipeline import BatchLimit, score_batch
from ..sinks import row_columns, rows_table
from .job import ScoringJob

# CPUs Ray reserves per preparation (and writing) task: a fraction, so that a scoring actor reserving most of a
# node's CPUs leaves room for the images it is waiting for (a pool reserving every CPU stalls them).
PREPARE_CPUS = 0.5

_preparers: dict[str, FacePreparer] = {}  # per worker process: one detector per set of options


def _preparer(job: ScoringJob, spec: ModelSpec) -> FacePreparer:
    key = json.dumps([spec.name, spec.input_size, spec.template.tolist(), job.preparation], sort_keys=True)
    if key not in _preparers:
        _preparers[key] = job.build_preparer(spec)
    return _preparers[key]


def prepare_images(batch: pa.Table, job: ScoringJob, spec: ModelSpec) -> pa.Table:
    """``path`` (and optionally the encoded image in ``bytes``) -> ``path`` and ``faces``
    (the pickled list of the image's PreparedFace; a bad image is one failed face)."""
    preparer = _preparer(job, spec)
    paths = batch.column("path").to_pylist()
    data = batch.column("bytes").to_pylist() if "bytes" in batch.column_names else [None] * len(paths)
    prepared = [preparer(path) if blob is None else preparer.from_bytes(path, blob) for path, blob in zip(paths, data)]
    return pa.table({"path": pa.array(paths, pa.string()), "faces": pa.array([pickle.dumps(faces) for faces in prepared], pa.binary())})


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
        faces = [face for blob in batch.column("faces").to_pylist() for face in pickle.loads(blob)]
        rows = []
        for start in range(0, len(faces), self.batch_size):
            rows += score_batch(faces[start : start + self.batch_size], self.method, self.limit)
        return rows_table(rows, self.columns)
