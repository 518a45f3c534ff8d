"""Result files that survive interruption: rows appended and flushed batch by batch, and
read back to resume. CSV and JSONL are written in place; Parquet, which cannot be
appended to, is journalled as JSONL beside the target and converted when the run ends.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import IO

from .extras import require

FACEQAN_COLUMNS = ("quality", "mean_sim", "std_sim", "flip_sim", "q_adv", "quality_0_100")
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".parquet": "parquet"}
FOLDER_PARTS = "part-*.parquet"  # the files of a ray run's output folder (faceqan.distributed)


def row_columns(method_columns: tuple[str, ...] | list[str] = FACEQAN_COLUMNS) -> list[str]:
    """An output's columns: where the face came from, the method's columns, the outcome."""
    return ["path", "face", "box", "det_score", "landmarks", *method_columns, "status", "error"]


COLUMNS = row_columns()


FOLDER_SETTINGS_NAME = "_faceqan_settings.json"  # in a ray run's output folder; leading "_": Parquet readers skip it


def settings_file(output: str | Path) -> Path:
    """Where a score output's run settings are: ``OUT.settings.json`` beside a file, or
    ``_faceqan_settings.json`` inside a ray run's folder."""
    output = Path(output)
    return output / FOLDER_SETTINGS_NAME if output.is_dir() else output.with_name(output.name + ".settings.json")


def output_format(path: str | Path) -> str:
    """csv, jsonl or parquet, from the suffix; Parquet needs pyarrow, checked here, before any work."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"unsupported output {path}: use one of {', '.join(FORMATS)}")
    if FORMATS[suffix] == "parquet":
        require("pyarrow", "parquet", f"Parquet output ({path}; .csv and .jsonl need nothing)")
    return FORMATS[suffix]


def _journal(path: Path) -> Path:
    return path.with_name(path.name + ".partial.jsonl")


def _drop_torn_tail(path: Path) -> None:
    """Cut a last line that an interrupted write left without its newline."""
    with open(path, "rb+") as handle:
        data = handle.read()
        if data and not data.endswith(b"\n"):
            handle.truncate(data.rfind(b"\n") + 1)


def read_rows(path: str | Path) -> list[dict]:
    """Rows already in an output (and its Parquet journal, if any), as dicts of strings or values;
    a ray run's output folder gives the rows of all its files."""
    path = Path(path)
    if path.is_dir():
        return read_folder(path).to_pylist()
    fmt = output_format(path)
    rows: list[dict] = []
    if fmt == "parquet":
        if path.exists():
            import pyarrow.parquet as pq

            rows += pq.read_table(path).to_pylist()
        path = _journal(path)
        fmt = "jsonl"
    if not path.exists():
        return rows
    _drop_torn_tail(path)
    with open(path, newline="", encoding="utf-8") as handle:
        if fmt == "csv":
            rows += list(csv.DictReader(handle))
        else:
            rows += [json.loads(line) for line in handle if line.strip()]
    return rows


def read_folder(folder: str | Path):
    """Every row of a ray run's output folder (its complete ``part-*.parquet`` files) as one pyarrow Table."""
    require("pyarrow", "parquet", f"reading the Parquet files of {folder}")
    import pyarrow as pa
    import pyarrow.parquet as pq

    parts = sorted(Path(folder).glob(FOLDER_PARTS))
    if not parts:
        raise FileNotFoundError(f"no result files ({FOLDER_PARTS}) in {folder}")
    return pa.concat_tables(pq.read_table(part) for part in parts)


class RowWriter:
    """Appends rows and makes them durable (flush + fsync) at each ``write`` call."""

    def __init__(self, path: str | Path, columns: list[str] = COLUMNS) -> None:
        self.path = Path(path)
        self.format = output_format(self.path)
        self.columns = columns
        self.path.parent.mkdir(parents=True, exist_ok=True)
        target = _journal(self.path) if self.format == "parquet" else self.path
        fresh = not target.exists() or target.stat().st_size == 0
        if self.format == "csv" and not fresh:
            _check_header(target, columns)
        self._handle: IO[str] = open(target, "a", newline="", encoding="utf-8")
        self._csv = None
        if self.format == "csv":
            self._csv = csv.DictWriter(self._handle, fieldnames=columns, extrasaction="ignore")
            if fresh:
                self._csv.writeheader()

    def write(self, rows: list[dict]) -> None:
        for row in rows:
            clean = {c: _plain(row.get(c)) for c in self.columns}
            if self._csv is not None:
                self._csv.writerow(clean)
            else:
                self._handle.write(json.dumps(clean) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        """Close; for Parquet, merge any earlier file and the journal into the target."""
        self._handle.close()
        if self.format == "parquet":
            import pyarrow.parquet as pq

            table = rows_table(read_rows(self.path), self.columns)
            temporary = self.path.with_name(self.path.name + ".tmp")
            pq.write_table(table, temporary)
            os.replace(temporary, self.path)
            _journal(self.path).unlink(missing_ok=True)

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_header(path: Path, columns: list[str]) -> None:
    """Refuse to append rows under another column layout (a file from another faceqan version)."""
    with open(path, newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle), [])
    if header != columns:
        raise ValueError(f"{path}: its columns ({','.join(header)}) differ from this version's ({','.join(columns)}); score into a new file")


def _plain(value: object) -> object:
    """NaN becomes a missing value (empty in CSV, null in JSONL and Parquet)."""
    return None if isinstance(value, float) and value != value else value


def rows_table(rows: list[dict], columns: list[str]):
    """Rows as a pyarrow Table with the Parquet schema of every faceqan output (NaN -> null)."""
    import pyarrow as pa

    return pa.Table.from_pylist([{c: _plain(r.get(c)) for c in columns} for r in rows], schema=_schema(columns))


def _schema(columns: list[str]):
    import pyarrow as pa

    text = {"path", "box", "landmarks", "status", "error"}
    return pa.schema([(c, pa.string() if c in text else pa.int64() if c == "face" else pa.float64()) for c in columns])
