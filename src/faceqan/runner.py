"""A resumable scoring run: paths in, one flushed row per input (or per face) out."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from .faces.prepare import FacePreparer
from .methods import QualityMethod
from .methods.base import as_method
from .models.spec import FaceModel
from .pipeline import Method, score_stream
from .sinks import RowWriter, read_rows, row_columns, settings_file


class RunError(Exception):
    """The run cannot start (its output clashes with an earlier run, for instance)."""


@dataclass
class RunSummary:
    total_inputs: int
    skipped: int = 0
    statuses: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def failed(self) -> int:
        return sum(count for status, count in self.statuses.items() if status != "ok")


def provenance() -> dict:
    """Versions that produced a run, kept beside its settings (not compared on --resume)."""
    import platform

    import numpy as np
    import torch

    from .version import __version__

    return {"faceqan": __version__, "torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version()}


def scoring_settings(model_name: str, model: FaceModel, method: QualityMethod, preparation: dict, model_options: dict | None = None) -> dict:
    """Everything that decides a run's rows: the faceqan version, the model (name, the options
    that read its file, a hash of its weights), the method's options and the face preparation
    (``FacePreparer.settings()``). A resume must match them all."""
    from .version import __version__

    model_part = {"model": model_name, "model_options": model_options or {}, "model_sha256": model.fingerprint()}
    return {"faceqan": __version__, **model_part, **method.settings(), **preparation}


def write_settings(sidecar: Path, settings: dict) -> None:
    sidecar.write_text(json.dumps({**settings, "provenance": provenance()}, indent=1, sort_keys=True))


def claim_output(output: Path, settings: dict, has_results: bool, resume: bool) -> None:
    """The one resume rule of a local file and a Ray folder alike: an output without results gets
    this run's settings beside it; one with results is refused unless ``resume``, and then only
    continued by a run of the same settings."""
    sidecar = settings_file(output)
    if not has_results:
        write_settings(sidecar, settings)
    elif not resume:
        raise RunError(f"{output} holds results: pass --resume to continue its run, or choose another output")
    else:
        check_same_settings(sidecar, settings, output)


def check_resume(output: Path, settings: dict, resume: bool) -> set[str]:
    """Paths already done in ``output``; refuses to mix runs with different settings."""
    existing = read_rows(output)
    claim_output(output, settings, bool(existing) or output.exists(), resume)
    return {row["path"] for row in existing}


def check_same_settings(sidecar: Path, settings: dict, output: Path) -> None:
    """Refuse to resume ``output`` when its run's settings (``sidecar``) differ; write them where missing."""
    if not sidecar.exists():
        write_settings(sidecar, settings)
        return
    previous = json.loads(sidecar.read_text())
    previous.pop("provenance", None)
    changed = sorted(k for k in set(previous) | set(settings) if previous.get(k) != settings.get(k))
    if changed:
        raise RunError(f"cannot resume {output}: settings differ from its run ({', '.join(changed)})")


def run_scoring(
    paths: list[str],
    output: str | Path,
    method: Method,
    preparer: FacePreparer,
    settings: dict,
    batch_size: int = 8,
    resume: bool = False,
    progress: bool = True,
) -> RunSummary:
    """Score ``paths`` into ``output``; Ctrl-C stops after the rows already written."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    done = check_resume(output, settings, resume)
    todo = [p for p in paths if p not in done]
    summary = RunSummary(total_inputs=len(paths), skipped=len(paths) - len(todo))
    start = time.perf_counter()
    method = as_method(method)
    columns = row_columns(method.output_columns)
    with RowWriter(output, columns) as writer, tqdm(total=len(todo), unit="img", disable=not progress) as bar:
        try:
            for rows in score_stream(todo, preparer, method, batch_size):
                writer.write(rows)
                summary.statuses.update(row["status"] for row in rows)
                bar.update(len({row["path"] for row in rows}))
        except KeyboardInterrupt:
            summary.interrupted = True
    summary.seconds = time.perf_counter() - start
    return summary
