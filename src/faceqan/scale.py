"""Quality on a 0-100 scale (ISO/IEC 29794-1 asks for integers 0-100, higher better).

A scale maps a native score to the share of a reference set's faces it beats: 40 means the
face scores above 40 % of the reference faces, so a gate that rejects the lowest 40 % of
faces like those rejects it. Each scale belongs to one model's weights and one method
setting (a score of other weights or options has another meaning), and is stored as the
reference scores' percentiles 0, 1, ..., 100 in a JSON file. Built-in scales are fitted on
LFW View 1's training images (``benchmarks/fit_scale.py``); ``faceqan scale`` fits one on
your own score files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from .sinks import read_rows, settings_file

FORMAT = 1


@dataclass(frozen=True)
class QualityScale:
    """``percentiles``: the reference scores at 0, 1, ..., 100 %; ``settings``: the model and method they belong to."""

    percentiles: np.ndarray
    settings: dict
    reference: str

    def __call__(self, quality: np.ndarray) -> np.ndarray:
        """Integers 0-100: the share of reference faces each score beats (NaN stays NaN)."""
        quality = np.asarray(quality, float)
        # Ties in the percentiles (many equal scores) take the middle of their range.
        low = np.interp(quality, self.percentiles, np.arange(101.0), left=0.0, right=100.0)
        high = 100.0 - np.interp(-quality, -self.percentiles[::-1], np.arange(101.0), left=0.0, right=100.0)
        return np.where(np.isnan(quality), np.nan, np.round((low + high) / 2))

    def matches(self, settings: dict) -> bool:
        """Whether scores of a run with ``settings`` (model_sha256, method, its options) are on this scale."""
        return all(settings.get(key) == value for key, value in self.settings.items())

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"format": FORMAT, "settings": self.settings, "reference": self.reference, "percentiles": self.percentiles.tolist()}, indent=1))


def load_scale(path: str | Path) -> QualityScale:
    data = json.loads(Path(path).read_text())
    if data.get("format") != FORMAT or len(data.get("percentiles", [])) != 101:
        raise ValueError(f"{path} is not a faceqan scale file of format {FORMAT}")
    return QualityScale(np.array(data["percentiles"], float), data["settings"], data["reference"])


def builtin_scale(model_name: str, settings: dict) -> QualityScale | None:
    """The shipped scale of ``model_name`` fitted for exactly ``settings``, if any: scales/MODEL.json
    is FaceQAN's at the model's defaults, scales/MODEL.METHOD.json another method's."""
    folder = resources.files("faceqan") / "scales"
    candidates = [folder / f"{model_name}.json", folder / f"{model_name}.{settings.get('method')}.json"]
    for path in candidates:
        if path.is_file() and (scale := load_scale(Path(str(path)))).matches(settings):
            return scale
    return None


def fit_scale(score_files: list[str | Path], reference: str) -> QualityScale:
    """A scale from the ok rows of ``faceqan score`` outputs made with one model and setting."""
    from .methods import score_setting_keys  # the methods use scales: import them when fitting

    keys, values, settings = score_setting_keys(), [], None
    for file in score_files:
        sidecar = settings_file(file)
        if not sidecar.exists():
            raise ValueError(f"{file}: no {sidecar.name} beside it; a scale needs `faceqan score` outputs")
        run = json.loads(sidecar.read_text())
        run = {key: run[key] for key in keys if key in run}
        if settings is not None and run != settings:
            raise ValueError(f"{file}: made with other settings than the other files ({run} vs {settings})")
        settings = run
        values += [float(r["quality"]) for r in read_rows(file) if r.get("status") == "ok" and r.get("quality") not in ("", None)]
    if len(values) < 100:
        raise ValueError(f"a scale needs at least 100 scored faces, the files hold {len(values)}")
    return QualityScale(np.percentile(values, np.arange(101)), settings or {}, f"{reference} ({len(values)} faces)")
