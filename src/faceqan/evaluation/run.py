"""The ``faceqan evaluate`` job: protocol -> embeddings and qualities (cached) -> tables, plots."""

from __future__ import annotations

import argparse
import csv
import json
import os
from pathlib import Path

import numpy as np

from ..cache import ResultCache
from ..faces.prepare import FacePreparer
from ..models import create_model
from ..pipeline import default_batch_size
from ..runner import provenance
from ..sinks import read_rows
from ..embedding import embedding_method
from .evaluate import cached_values, comparison_scores, evaluate, plot_curves, results_table
from .metrics import threshold_at_fmr
from .operating_points import operating_points, operating_points_table, random_operating_points
from .protocols import Protocol, load_protocol

FACEQAN_COLUMNS = {"faceqan": "quality", "faceqan q_adv (no symmetry)": "q_adv", "s_f (from faceqan)": "flip_sim"}


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


def _faceqan_setting(args: argparse.Namespace, model_name: str, model) -> dict:
    return {"kind": "faceqan", "model": model_name, "preprocessing": _preprocessing(model, args.landmarks), "eps": args.eps, "steps": args.steps,
            "copies": args.copies, "power": args.power, "variant": args.variant, "seed": args.seed}  # fmt: skip


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _operating_points(protocol: Protocol, scores: np.ndarray, qualities: dict[str, np.ndarray], args: argparse.Namespace, out: Path) -> str:
    """Write operating_points.csv; return its Markdown section for results.md."""
    score_threshold = threshold_at_fmr(scores[~protocol.mated], args.fmr)
    points = {name: operating_points(protocol, scores, values, score_threshold) for name, values in qualities.items()}
    if args.random_seeds:
        points[f"random ({args.random_seeds} seeds)"] = random_operating_points(protocol, scores, score_threshold, args.random_seeds)
    _write_csv(out / "operating_points.csv", [{"method": name, **row} for name, rows in points.items() for row in rows])
    reference = next(iter(qualities))
    return (
        f"\nOperating points: reject the images whose {reference} quality is below the threshold (and those "
        f"without a quality), then compare the pairs left at the score threshold fixed at FMR {args.fmr:g} on all "
        f"pairs ({score_threshold:.4f}). Thresholds are specific to the quality model and settings above.\n\n"
        + operating_points_table(points, reference)
    )


def run_evaluation(args: argparse.Namespace) -> list[dict]:
    from ..algorithm import FaceQAN
    from ..baselines import create_baseline
    from ..pipeline import faceqan_method

    protocol = load_protocol(args.protocol, args.all_pairs, args.max_images)
    images = protocol.images
    batch = args.batch_size or default_batch_size(args.device)
    comparison = create_model(args.comparison_model, args.device)
    embed_cache = ResultCache(args.cache, {"kind": "embedding", "model": args.comparison_model, "preprocessing": _preprocessing(comparison, args.landmarks)})
    embeddings = cached_values(images, FacePreparer(comparison.spec, landmarks=args.landmarks), embedding_method(comparison), embed_cache, batch, not args.quiet, args.device)
    scores, valid = comparison_scores(protocol, {p: (r or {}).get("embedding") for p, r in embeddings.items()})
    dropped = int((~valid).sum())
    protocol, scores = protocol.subset(valid), scores[valid]

    qualities: dict[str, np.ndarray] = {}
    quality_model_name = args.quality_model or args.comparison_model
    quality_model = comparison if quality_model_name == args.comparison_model else None
    for name in args.method:
        if quality_model is None:
            quality_model = create_model(quality_model_name, args.device)
        if args.eps is None:
            args.eps = quality_model.spec.default_eps
        preparer = FacePreparer(quality_model.spec, landmarks=args.landmarks)
        if name == "faceqan":
            scorer = FaceQAN(quality_model, args.eps, args.steps, args.copies, args.power, args.variant, args.seed)
            cache = ResultCache(args.cache, _faceqan_setting(args, quality_model_name, quality_model))
            faceqan_batch = args.batch_size or default_batch_size(args.device, quality_model.spec)
            rows = cached_values(images, preparer, faceqan_method(scorer), cache, faceqan_batch, not args.quiet, args.device)
            for label, column in FACEQAN_COLUMNS.items():
                qualities[label] = np.array([(r or {}).get(column, np.nan) if (r or {}).get("status") == "ok" else np.nan for r in map(rows.get, images)], float)
        else:
            setting = {"kind": name, "model": quality_model_name, "preprocessing": _preprocessing(quality_model, args.landmarks), "seed": args.seed}
            cache = ResultCache(args.cache, setting)
            rows = cached_values(images, preparer, create_baseline(name, quality_model, args.seed), cache, batch, not args.quiet, args.device)
            qualities[name] = np.array([(r or {}).get("quality", np.nan) if (r or {}).get("status") == "ok" else np.nan for r in map(rows.get, images)], float)
    for spec in args.quality_csv:
        name, values = _quality_from_csv(spec, images)
        qualities[name] = values
    if not qualities:
        raise ValueError("no quality method: give --method and / or --quality-csv")

    results = evaluate(protocol, scores, qualities, args.fmr, args.edc_limit, args.pair_quality, args.bootstrap, args.random_seeds, args.edc_start_fnmr)
    edc_threshold = f"at FMR {args.fmr:g}" if args.edc_start_fnmr is None else f"at a starting FNMR of {args.edc_start_fnmr:g} (on all mated pairs)"
    rows, markdown = results_table(results)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    mated = int(protocol.mated.sum())
    header = (
        f"Protocol: {protocol.name}: {len(protocol)} pairs ({mated} mated, {len(protocol) - mated} non-mated), "
        f"{len(images)} images; {dropped} pairs dropped (an image without a face for the comparison model).\n"
        f"Comparison model: {args.comparison_model}; quality model: {quality_model_name}; pair quality: {args.pair_quality}; landmarks: {args.landmarks}.\n"
        f"ERC: FNMR at a threshold re-derived at FMR {args.fmr:g} on the remaining non-mated pairs; AUC x 1e3 over "
        f"[0, r]. EDC: threshold fixed {edc_threshold} before discarding; pAUC x 1e3 to {args.edc_limit:g}, "
        f"and minus the theoretical best. Brackets: 95% bootstrap interval over identities ({args.bootstrap} resamples); "
        f"random: mean and +-1 sd over {args.random_seeds} seeds. Lower is better.\n"
    )
    if "faceqan" in args.method and args.eps is not None:
        header += f"FaceQAN: eps {args.eps:g}, l {args.steps}, k {args.copies}, p {args.power:g}, variant {args.variant}, seed {args.seed}.\n"
    markdown += _operating_points(protocol, scores, qualities, args, out)
    (out / "results.md").write_text(header + "\n" + markdown)
    _write_csv(out / "results.csv", rows)
    # Each image's quality per method (empty: no quality), for analyses of one's own.
    _write_csv(out / "qualities.csv", [{"path": path, **{name: "" if np.isnan(v[i]) else float(v[i]) for name, v in qualities.items()}} for i, path in enumerate(images)])
    plot_curves(results, str(out) + "/", f"{protocol.name}, {args.comparison_model} errors, {quality_model_name} quality")
    (out / "settings.json").write_text(json.dumps({**vars(args), "provenance": provenance()}, indent=1, default=str))
    print(header + "\n" + markdown)
    return rows
