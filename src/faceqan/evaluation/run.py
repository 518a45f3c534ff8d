"""The ``faceqan evaluate`` job: protocol -> embeddings and qualities (cached) -> tables, plots."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__
from ..cache import ResultCache
from ..devices import resolve_device
from ..embedding import EmbeddingMethod
from ..extras import require
from ..faces.prepare import FacePreparer
from ..methods import METHODS, QualityMethod, create_method, method_options
from ..models import create_model
from ..models.spec import FaceModel
from ..runner import provenance
from ..sinks import read_rows
from .evaluate import cached_values, comparison_scores, evaluate, plot_curves, results_table
from .metrics import threshold_at_fmr
from .operating_points import operating_points, operating_points_table, random_operating_points
from .protocols import Protocol, load_protocol


@dataclass
class EvaluationConfig:
    """What ``faceqan evaluate`` computes; ``method_options`` (eps, steps, seed, ...) go to each
    method in ``methods`` that takes them, the others keep their defaults."""

    protocol: str
    methods: list[str] = field(default_factory=list)
    quality_csv: list[str] = field(default_factory=list)
    all_pairs: bool = False
    max_images: int | None = None
    comparison_model: str = "dlib"
    quality_model: str | None = None  # None: the comparison model
    method_options: dict = field(default_factory=dict)
    landmarks: str = "refined"
    fmr: float = 1e-3
    edc_limit: float = 0.2
    edc_start_fnmr: float | None = None
    pair_quality: str = "min"
    bootstrap: int = 100
    random_seeds: int = 10
    out: str = "evaluation"
    cache: str = ".faceqan-cache"
    device: str = "cpu"
    batch_size: int | None = None
    quiet: bool = False


def _quality_from_csv(spec: str, images: list[str]) -> tuple[str, np.ndarray]:
    if "=" not in spec:
        raise ValueError(f"--quality-csv wants NAME=FILE[:COLUMN], got {spec!r}")
    name, rest = spec.split("=", 1)
    file, column = (rest, "") if Path(rest).exists() else rest.rsplit(":", 1)
    by_path = {os.path.abspath(row["path"]): row for row in read_rows(file)}
    values = np.full(len(images), np.nan)
    for i, path in enumerate(images):
        row = by_path.get(os.path.abspath(path))
        if row is not None and row.get("status") == "ok" and row.get(column or "quality") not in ("", None):
            values[i] = float(row[column or "quality"])
    return name, values


def _preprocessing(model, landmarks: str) -> str:
    """What decides a model's input besides the image: landmarks, size, template, normalisation."""
    spec = model.spec
    key = f"{spec.input_size}|{np.round(spec.template, 3).tolist()}|{spec.input_mean}|{spec.input_std}|{spec.bgr}"
    # Single-pass landmarks came first: their keys keep the older form, so existing caches stay valid.
    return key if landmarks == "single" else f"{key}|landmarks={landmarks}"


def _cache_setting(kind: str, model_name: str, model: FaceModel, landmarks: str, options: dict) -> dict:
    """What decides a cached value: the faceqan version, the model's weights, the preprocessing, the method's options."""
    return {"kind": kind, "faceqan": __version__, "model": model_name, "model_sha256": model.fingerprint(),
            "preprocessing": _preprocessing(model, landmarks), **options}  # fmt: skip


def _create_methods(config: EvaluationConfig, model: FaceModel) -> list[QualityMethod]:
    """The methods to evaluate, each with the options it takes; unknown names refused before any work."""
    unknown = [name for name in config.methods if name not in METHODS]
    if unknown:
        raise ValueError(f"unknown quality method {', '.join(map(repr, unknown))}; choose among {', '.join(METHODS)}")
    given = {key: value for key, value in config.method_options.items() if value is not None}
    unused = sorted(set(given) - {option for name in config.methods for option in method_options(name)})
    if unused:
        raise ValueError(f"no method among {', '.join(config.methods) or 'none'} takes the option(s) {', '.join(unused)}")
    return [create_method(name, model, **{k: v for k, v in given.items() if k in method_options(name)}) for name in config.methods]


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _operating_points(protocol: Protocol, scores: np.ndarray, qualities: dict[str, np.ndarray], config: EvaluationConfig, out: Path) -> str:
    """Write operating_points.csv; return its Markdown section for results.md."""
    score_threshold = threshold_at_fmr(scores[~protocol.mated], config.fmr)
    points = {name: operating_points(protocol, scores, values, score_threshold) for name, values in qualities.items()}
    if config.random_seeds:
        points[f"random ({config.random_seeds} seeds)"] = random_operating_points(protocol, scores, score_threshold, config.random_seeds)
    _write_csv(out / "operating_points.csv", [{"method": name, **row} for name, rows in points.items() for row in rows])
    reference = next(iter(qualities))
    return (
        f"\nOperating points: reject the images whose {reference} quality is below the threshold (and those "
        f"without a quality), then compare the pairs left at the score threshold fixed at FMR {config.fmr:g} on all "
        f"pairs ({score_threshold:.4f}). Thresholds are specific to the quality model and settings above.\n\n"
        + operating_points_table(points, reference)
    )


def run_evaluation(config: EvaluationConfig) -> list[dict]:
    """Run the evaluation ``config`` describes; write its tables, plots and settings to ``config.out``."""
    device = resolve_device(config.device)
    require("matplotlib", "plots", "faceqan evaluate's ERC / EDC plots")
    protocol = load_protocol(config.protocol, config.all_pairs, config.max_images)
    images = protocol.images
    comparison = create_model(config.comparison_model, device)
    quality_model_name = config.quality_model or config.comparison_model
    quality_model = comparison if quality_model_name == config.comparison_model else create_model(quality_model_name, device)
    methods = _create_methods(config, quality_model)
    if not methods and not config.quality_csv:
        raise ValueError("no quality method: give --method and / or --quality-csv")

    embedder = EmbeddingMethod(comparison)
    embed_cache = ResultCache(config.cache, _cache_setting("embedding", config.comparison_model, comparison, config.landmarks, {}))
    preparer = FacePreparer(comparison.spec, landmarks=config.landmarks)
    embeddings = cached_values(images, preparer, embedder, embed_cache, config.batch_size or embedder.default_batch_size(), not config.quiet)
    scores, valid = comparison_scores(protocol, {p: (r or {}).get("embedding") for p, r in embeddings.items()})
    dropped = int((~valid).sum())
    protocol, scores = protocol.subset(valid), scores[valid]

    qualities: dict[str, np.ndarray] = {}
    preparer = FacePreparer(quality_model.spec, landmarks=config.landmarks)
    for method in methods:
        cache = ResultCache(config.cache, _cache_setting(method.name, quality_model_name, quality_model, config.landmarks, method.options()))
        rows = cached_values(images, preparer, method, cache, config.batch_size or method.default_batch_size(), not config.quiet)
        for label, column in method.evaluation_columns().items():
            qualities[label] = np.array([(r or {}).get(column, np.nan) if (r or {}).get("status") == "ok" else np.nan for r in map(rows.get, images)], float)
    for spec in config.quality_csv:
        name, values = _quality_from_csv(spec, images)
        qualities[name] = values
    results = evaluate(protocol, scores, qualities, config.fmr, config.edc_limit, config.pair_quality, config.bootstrap, config.random_seeds, config.edc_start_fnmr)
    edc_threshold = f"at FMR {config.fmr:g}" if config.edc_start_fnmr is None else f"at a starting FNMR of {config.edc_start_fnmr:g} (on all mated pairs)"
    rows, markdown = results_table(results)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    mated = int(protocol.mated.sum())
    header = (
        f"Protocol: {protocol.name}: {len(protocol)} pairs ({mated} mated, {len(protocol) - mated} non-mated), "
        f"{len(images)} images; {dropped} pairs dropped (an image without a face for the comparison model).\n"
        f"Comparison model: {config.comparison_model}; quality model: {quality_model_name}; pair quality: {config.pair_quality}; landmarks: {config.landmarks}.\n"
        f"ERC: FNMR at a threshold re-derived at FMR {config.fmr:g} on the remaining non-mated pairs; AUC x 1e3 over "
        f"[0, r]. EDC: threshold fixed {edc_threshold} before discarding; pAUC x 1e3 to {config.edc_limit:g}, "
        f"and minus the theoretical best. Brackets: 95% bootstrap interval over identities ({config.bootstrap} resamples); "
        f"random: mean and +-1 sd over {config.random_seeds} seeds. Lower is better.\n"
    )
    for method in methods:
        if method.options():
            header += f"{method.describe()}.\n"
    markdown += _operating_points(protocol, scores, qualities, config, out)
    (out / "results.md").write_text(header + "\n" + markdown)
    _write_csv(out / "results.csv", rows)
    # Each image's quality per method (empty: no quality), for analyses of one's own.
    _write_csv(out / "qualities.csv", [{"path": path, **{name: "" if np.isnan(v[i]) else float(v[i]) for name, v in qualities.items()}} for i, path in enumerate(images)])
    plot_curves(results, str(out) + "/", f"{protocol.name}, {config.comparison_model} errors, {quality_model_name} quality")
    settings = {**asdict(config), "methods_used": [m.settings() for m in methods], "comparison_model_sha256": comparison.fingerprint(),
                "quality_model_sha256": quality_model.fingerprint()}  # fmt: skip
    (out / "settings.json").write_text(json.dumps({**settings, "provenance": provenance()}, indent=1, default=str))
    print(header + "\n" + markdown)
    return rows
