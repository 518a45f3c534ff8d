"""A distributed run's output folder: Parquet files that appear whole (written aside, then
renamed), the run's settings beside them, and what a resume reads back."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from ray.data import Datasink
from ray.data.block import Block, BlockAccessor

from ..runner import RunError, claim_output
from ..sinks import FOLDER_PARTS


class ParquetFolderSink(Datasink):
    """Writes each bundle of rows (at least ``rows_per_file``, or what is left) to its own file
    ``part-<hash of its rows' paths and faces>.parquet``: written under a hidden temporary name,
    synced, then renamed, so a killed run leaves only complete files, and a write task that Ray
    retries after its rename replaces its file instead of adding a copy. ``statuses`` counts the
    rows written, by status."""

    def __init__(self, folder: str | Path, rows_per_file: int = 1000) -> None:
        self.folder = Path(folder)
        self.rows_per_file = rows_per_file
        self.statuses: Counter = Counter()

    @property
    def min_rows_per_write(self) -> int:
        return self.rows_per_file

    def write(self, blocks: Iterable[Block], ctx: object) -> Counter:
        tables = [table for block in blocks if (table := BlockAccessor.for_block(block).to_arrow()).num_rows]
        if not tables:
            return Counter()
        table = pa.concat_tables(tables)
        name = f"part-{_rows_key(table)}.parquet"
        temporary = self.folder / f".{name}.{uuid.uuid4().hex}.tmp"  # two tries at once never share one
        with open(temporary, "wb") as handle:
            pq.write_table(table, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.folder / name)
        return Counter(table.column("status").to_pylist())

    def on_write_complete(self, write_result) -> None:
        self.statuses = sum(write_result.write_returns, Counter())


def _rows_key(table: pa.Table) -> str:
    """A name for these rows that depends on which inputs they are (path, face) and nothing else."""
    digest = hashlib.sha256()
    for path, face in zip(table.column("path").to_pylist(), table.column("face").to_pylist()):
        digest.update(f"{path}\0{face}\n".encode())
    return digest.hexdigest()[:32]


def open_folder(folder: str | Path, settings: dict, resume: bool) -> set[str]:
    """Make or reopen the output folder; the inputs (paths) already in it. Refuses a folder with
    rows unless ``resume``, and a resume whose settings differ from the folder's run."""
    folder = Path(folder)
    if (folder.exists() and not folder.is_dir()) or folder.suffix.lower() in (".csv", ".jsonl"):
        raise RunError(f"{folder}: the ray engine writes a folder of Parquet files; name a folder")
    folder.mkdir(parents=True, exist_ok=True)
    for leftover in folder.glob(".part-*.tmp"):  # a file being written when a run was killed
        leftover.unlink()
    parts = sorted(folder.glob(FOLDER_PARTS))
    claim_output(folder, settings, bool(parts), resume)
    return {path for part in parts for path in pq.read_table(part, columns=["path"]).column("path").to_pylist()}
