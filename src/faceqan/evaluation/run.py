"""The ``faceqan evaluate`` job: protocol -> embeddings and qualities (cached) -> tables, plots."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..version import __version__
from ..cache import ResultCache
from ..devices import resolve_device
from ..embedding import EmbeddingMethod
from ..extras import require
from ..faces.prepare import FacePreparer
from ..methods import METHODS, QualityMethod, create_method, method_options
from ..models import BUILTIN_MODELS, create_model
from ..models.spec import FaceModel
from ..runner import provenance
from ..sinks import read_rows
from .evaluate import cached_values_of, comparison_scores, evaluate, plot_curves, results_table
from .metrics import threshold_at_fmr
from .operating_points import operating_points, operating_points_table, random_operating_points
from .datasets import load_protocol
from .evaluate import item_embeddings, item_values
from .protocols import Protocol, ProtocolError, check_identities


@dataclass
class EvaluationConfig:
    """What ``faceqan evaluate`` computes; ``method_options`` (eps, steps, seed, ...) go to each
    method in ``methods`` that takes them, the others keep their defaults."""

    protocol: str
    protocol_kind: str = "auto"  # datasets.PROTOCOL_KINDS
    identity_from: str | None = None  # parent, grandparent or a regex (CSV and folder protocols)
    methods: list[str] = field(default_factory=list)
    quality_csv: list[str] = field(default_factory=list)
    all_pairs: bool = False
    max_images: int | None = None
    comparison_model: str = "dlib"
    quality_model: str | None = None  # None: the comparison model
    model_options: dict = field(default_factory=dict)  # arch, input_size, ... for the models given as files
    method_options: dict = field(default_factory=dict)
    landmarks: str = "refined"
    aligned: bool = False  # the images are chips already aligned for the models: no detection
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
    """A named per-image quality from a ``faceqan score`` output: NAME=FILE[:COLUMN]."""
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
    return f"{key}|landmarks={landmarks}"


def check_enough_pairs(protocol: Protocol, fmr: float, when: str = "") -> None:
    """Refuse, before any computing, a protocol that cannot make an ERC at ``fmr``."""
    mated = int(protocol.mated.sum())
    nonmated = len(protocol) - mated
    needed = int(np.ceil(1 / fmr - 1e-9))
    if mated == 0 or nonmated < needed:
        raise ProtocolError(
            f"{protocol.name}: {mated} mated and {nonmated} non-mated pairs{' ' + when if when else ''}; an ERC at FMR {fmr:g} needs mated pairs and at least "
            f"{needed} non-mated ones: use --all-pairs (every pair among the images), more images (--max-images), or a higher --fmr"
        )


def _load_model(name: str, device, options: dict) -> FaceModel:
    """A built-in model, or a model file read with ``options`` (arch, input_size, ...)."""
    from ..models import BUILTIN_MODELS

    return create_model(name, device) if name in BUILTIN_MODELS else create_model(name, device, **options)


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


def _model_label(name: str, model: FaceModel) -> str:
    """A model as results.md names it: its name or file, and the start of its weights' hash."""
    return f"{name} (weights sha256 {model.fingerprint()[:12]})"


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
    protocol = load_protocol(config.protocol, config.all_pairs, config.max_images, config.protocol_kind, config.identity_from)
    check_identities(protocol)
    check_enough_pairs(protocol, config.fmr)
    images = protocol.images
    paths = protocol.image_paths()
    quality_model_name = config.quality_model or config.comparison_model
    if config.model_options and all(name in BUILTIN_MODELS for name in (config.comparison_model, quality_model_name)):
        raise ValueError(f"model options {sorted(config.model_options)} apply to model files; --comparison-model and --quality-model are built-in")
    comparison = _load_model(config.comparison_model, device, config.model_options)
    same_model = quality_model_name == config.comparison_model
    quality_model = comparison if same_model else _load_model(quality_model_name, device, config.model_options)
    methods = _create_methods(config, quality_model)
    if not methods and not config.quality_csv:
        raise ValueError("no quality method: give --method and / or --quality-csv")
    # Template protocols come with landmarks (no detection); they decide the chips, hence the cache key.
    if config.aligned and protocol.landmarks:
        raise ValueError(f"{protocol.name} comes with landmarks to align its images; --aligned is for chips already aligned")
    landmarks = "given" if protocol.landmarks else "none (aligned input)" if config.aligned else config.landmarks

    embedder = EmbeddingMethod(comparison)
    embed_cache = ResultCache(config.cache, _cache_setting("embedding", config.comparison_model, comparison, landmarks, {}))
    preparer = FacePreparer(comparison.spec, config.aligned, landmarks=config.landmarks, given_landmarks=protocol.landmarks)
    method_jobs = [(m, ResultCache(config.cache, _cache_setting(m.name, quality_model_name, quality_model, landmarks, m.options()))) for m in methods]
    # One model: its embeddings and every method share each image's detection and alignment.
    jobs = [(embedder, embed_cache), *(method_jobs if same_model else [])]
    values = cached_values_of(paths, preparer, jobs, config.batch_size or max(m.default_batch_size() for m, _ in jobs), not config.quiet)
    embeddings, method_rows = values[0], values[1:]
    per_item = item_embeddings(protocol, {p: (r or {}).get("embedding") if (r or {}).get("status") == "ok" else None for p, r in embeddings.items()})
    scores, valid = comparison_scores(protocol, per_item)
    dropped = int((~valid).sum())
    protocol, scores = protocol.subset(valid), scores[valid]
    if dropped:
        check_enough_pairs(protocol, config.fmr, f"after dropping {dropped} pairs with an image without a face")

    qualities: dict[str, np.ndarray] = {}
    for spec in config.quality_csv:  # score files first: the paired intervals are against the first row
        name, values = _quality_from_csv(spec, paths)
        qualities[name] = item_values(protocol, paths, values)
    if method_jobs and not same_model:
        preparer = FacePreparer(quality_model.spec, config.aligned, landmarks=config.landmarks, given_landmarks=protocol.landmarks)
        method_rows = cached_values_of(paths, preparer, method_jobs, config.batch_size or max(m.default_batch_size() for m in methods), not config.quiet)
    for method, rows in zip(methods, method_rows):
        for label, column in method.evaluation_columns().items():
            per_image = np.array([(r or {}).get(column, np.nan) if (r or {}).get("status") == "ok" else np.nan for r in map(rows.get, paths)], float)
            qualities[label] = item_values(protocol, paths, per_image)
    results = evaluate(protocol, scores, qualities, config.fmr, config.edc_limit, config.pair_quality, config.bootstrap, config.random_seeds, config.edc_start_fnmr)
    edc_threshold = f"at FMR {config.fmr:g}" if config.edc_start_fnmr is None else f"at a starting FNMR of {config.edc_start_fnmr:g} (on all mated pairs)"
    rows, markdown = results_table(results)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    mated = int(protocol.mated.sum())
    header = (
        f"Protocol: {protocol.name}: {len(protocol)} pairs ({mated} mated, {len(protocol) - mated} non-mated), "
        f"{len(images)} {'templates' if protocol.members else 'images'}; {dropped} pairs dropped (an image without a face for the comparison model).\n"
        f"Identities: {protocol.identity_count} ({protocol.identity_rule}); mated flags checked against them.\n"
        + (f"Templates: {len(paths)} images; a template's embedding is the mean of its images' normalised embeddings and its "
           "quality the mean of its images' qualities (images without a face left out).\n" if protocol.members else "")
        + f"Comparison model: {_model_label(config.comparison_model, comparison)}; quality model: {_model_label(quality_model_name, quality_model)}; "
        f"pair quality: {config.pair_quality}; landmarks: {landmarks}.\n"
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
