"""A model's FROQ layers: which stage maps, with which sign and standardisation, saved as JSON.
A file names the model's weights (SHA-256) and the number of stages it was chosen from; one for
other weights, another stage count or another format is refused with one line."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

FORMAT = 1


class FroqLayersError(ValueError):
    """A layers file that cannot serve this model (the message says why)."""


@dataclass
class FroqLayers:
    """quality = mean over chosen stages i of sign_i * (log_rms_i - mean_i) / std_i."""

    model: str
    model_sha256: str
    stages: int  # stage maps the model has (checked at load and at use)
    chosen: list[int]
    signs: list[int]
    mean: list[float]
    std: list[float]
    report: dict = field(default_factory=dict)

    def save(self, path: str | Path) -> None:
        path = Path(path)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps({"format": FORMAT, **asdict(self)}, indent=1) + "\n")
        temporary.replace(path)


def load_layers(path: str | Path, model_sha256: str) -> FroqLayers:
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise FroqLayersError(f"{path} is not a FROQ layers file: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise FroqLayersError(f"{path}: not a FROQ layers file of format {FORMAT}; run `faceqan calibrate-froq` again")
    if data["model_sha256"] != model_sha256:
        raise FroqLayersError(f"{path} was calibrated for the model {data['model']!r} with other weights (sha256 {data['model_sha256'][:12]}), not this one ({model_sha256[:12]})")
    data.pop("format")
    return FroqLayers(**data)


def builtin_layers(model_name: str) -> Path | None:
    """The layers shipped for a built-in model, if any."""
    path = resources.files("faceqan.froq") / "builtin" / f"{model_name}.json"
    return Path(str(path)) if path.is_file() else None
