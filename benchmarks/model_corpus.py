"""The corpus of face model graphs users bring: build it, check what loads, compare converters.

    python benchmarks/model_corpus.py --out runs/model_corpus                 # build + check, resumable
    python benchmarks/model_corpus.py --out runs/model_corpus --table docs/model_corpus.md
    python benchmarks/model_corpus.py --out runs/model_corpus --compare       # faceqan vs onnx2torch vs onnx2pytorch

Every architecture of ``corpus/architectures.py`` (seeded random weights: conversion needs
no trained ones) is exported with the TorchScript and dynamo exporters at opsets 11, 13 and
17, with a dynamic batch and a fixed batch of 1; MobileFaceNet (PReLU) and IResNet-50 also as
onnxruntime dynamic int8, static QDQ int8 and float16 copies; plus a TensorFlow-style graph.
For each file (``corpus.csv``, one row per file, appended as checked): faceqan loads it, its
embeddings against the torch module's and onnxruntime's (cosine), the input gradient, and a
row from ``faceqan score`` (FaceQAN with k 2, l 1: this checks conversion, not speed).
``--compare`` loads each file with every converter that imports (onnx2torch and onnx2pytorch
import torchvision: run it where that is installed) and times IResNet-50 forward + backward
per face, beside the torch module itself, in one process.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent / "corpus"))
from architectures import ARCHITECTURES, build, input_size  # noqa: E402
from graphs import EXPORTERS, OPSETS, export, onnxruntime_embeddings, quantise_dynamic, quantise_static, tensorflow_style, to_float16  # noqa: E402

QUANTISED_FROM = ("mobilefacenet-prelu", "iresnet50")
COPIES = {"int8-dynamic": quantise_dynamic, "int8-qdq": lambda s, p: quantise_static(s, p, 112), "float16": to_float16}
FIELDS = ["file", "architecture", "exporter", "opset_asked", "opset_written", "batch", "kind", "megabytes", "loads", "load_s",
          "cosine_torch", "cosine_onnxruntime", "gradient", "score_row", "error"]  # fmt: skip


def plan(out: Path, small: bool, only: list[str] | None) -> list[dict]:
    """Every file of the corpus, as the row it starts."""
    entries = []
    for name in ARCHITECTURES:
        if only and name not in only:
            continue
        for exporter in EXPORTERS:
            for opset in OPSETS:
                for batch in ("dynamic", "1"):
                    file = out / f"{name}-{exporter}-{opset}-batch{batch}.onnx"
                    entries.append({"file": file, "architecture": name, "exporter": exporter, "opset_asked": opset, "batch": batch, "kind": "float"})
        if name in QUANTISED_FROM:
            for kind in COPIES:
                entries.append({"file": out / f"{name}-{kind}.onnx", "architecture": name, "exporter": "torchscript",
                                "opset_asked": 17, "batch": "dynamic", "kind": kind})  # fmt: skip
    if not only or "tf-style" in only:
        entries.append({"file": out / "tf-style.onnx", "architecture": "tf-style", "exporter": "onnx.helper", "opset_asked": 13,
                        "batch": "dynamic", "kind": "float"})  # fmt: skip
    return entries


def make(entry: dict, networks: dict, small: bool) -> None:
    """Write the entry's file unless it is there."""
    file: Path = entry["file"]
    if file.exists():
        return
    partial = file.with_suffix(".partial.onnx")
    name = entry["architecture"]
    if name == "tf-style":
        tensorflow_style(partial)
    elif entry["kind"] in COPIES:
        source = file.parent / f"{name}-torchscript-17-batchdynamic.onnx"
        COPIES[entry["kind"]](source, partial)
    else:
        network = networks.setdefault(name, build(name, small))
        export(network, input_size(name), partial, entry["exporter"], entry["opset_asked"], entry["batch"] == "dynamic")
    partial.rename(file)


def _opset(file: Path) -> int:
    import onnx

    model = onnx.load(str(file), load_external_data=False)
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.double().reshape(len(a), -1), b.double().reshape(len(b), -1)).min())


def check(entry: dict, networks: dict, small: bool, face: Path) -> dict:
    """The entry's row: how faceqan loads, matches and scores it."""
    from faceqan.cli import EXIT_OK, main
    from faceqan.models import create_model

    file: Path = entry["file"]
    row = {**entry, "file": file.name, "opset_written": _opset(file), "megabytes": f"{file.stat().st_size / 1e6:.1f}"}
    start = time.perf_counter()
    try:
        model = create_model(str(file))
    except Exception as exc:
        return {**row, "loads": "no", "error": str(exc).splitlines()[0][:300]}
    row.update(loads="yes", load_s=f"{time.perf_counter() - start:.2f}")
    size = model.spec.input_size
    x = torch.rand((2, 3, size, size), generator=torch.Generator().manual_seed(0)) * 2 - 1
    raw = x * model.scale[0] + model.scale[1]
    with torch.no_grad():
        ours = model.network(raw)
    feed = raw.permute(0, 2, 3, 1) if model.network.channels_last else raw
    row["cosine_onnxruntime"] = f"{_cosine(ours, torch.from_numpy(onnxruntime_embeddings(file, feed.contiguous().numpy(), model.network.fixed_batch))):.6f}"
    if entry["architecture"] in ARCHITECTURES:
        network = networks.setdefault(entry["architecture"], build(entry["architecture"], small))
        with torch.no_grad():
            row["cosine_torch"] = f"{_cosine(ours, network(raw)):.6f}"
    x.requires_grad_(True)
    (gradient,) = torch.autograd.grad(model(x).sum(), x)
    row["gradient"] = "finite, non-zero" if torch.isfinite(gradient).all() and (gradient != 0).any() else "BAD"
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "scores.csv"
        code = main(["score", str(face), "-o", str(out), "--model", str(file), "--eps", "0.005", "--copies", "2", "--steps", "1", "--quiet"])
        rows = list(csv.DictReader(out.open())) if out.exists() else []
        row["score_row"] = rows[0]["status"] if code == EXIT_OK and rows else f"exit {code}"
    return row


def build_and_check(args: argparse.Namespace) -> None:
    from faceqan.shared_data import lfw, require

    face = min(require(lfw).rglob("*.jpg"))  # one line and exit 2 where the shared data is missing
    args.out.mkdir(parents=True, exist_ok=True)
    results = args.out / "corpus.csv"
    done = {row["file"] for row in csv.DictReader(results.open())} if results.exists() else set()
    networks: dict = {}
    with results.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, FIELDS, extrasaction="ignore")
        if not done:
            writer.writeheader()
        for entry in plan(args.out, args.small, args.only):
            if entry["file"].name in done:
                continue
            try:
                make(entry, networks, args.small)
                row = check(entry, networks, args.small, face)
            except Exception as exc:  # an export that fails is a finding, not the end of the run
                row = {**entry, "file": entry["file"].name, "loads": "not built", "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"}
            writer.writerow(row)
            handle.flush()
            print(f"{row['file']}: {row.get('loads')} {row.get('cosine_onnxruntime', '')} {row.get('score_row', '')} {row.get('error', '')}", flush=True)


def write_table(results: Path, table: Path) -> None:
    rows = list(csv.DictReader(results.open()))
    loads = sum(r["loads"] == "yes" for r in rows)
    good = sum(r["loads"] == "yes" and r["gradient"].startswith("finite") and r["score_row"] == "ok" for r in rows)
    lines = [
        "<!-- generated by `python benchmarks/model_corpus.py --out DIR --table docs/model_corpus.md`: do not edit -->",
        "# The model corpus: what faceqan loads",
        "",
        f"{len(rows)} files; faceqan loads {loads}, and {good} also give a finite, non-zero input gradient and a "
        "`faceqan score` row. Cosines are the lowest over 2 random inputs; float graphs must reach 0.9999 against "
        "the torch module and onnxruntime, int8 and float16 copies are compared with onnxruntime's own reduced-precision run.",
        "",
        "| file | exporter | opset asked / written | batch | kind | MB | loads | load s | cos torch | cos onnxruntime | gradient | score | error |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['file']} | {r['exporter']} | {r['opset_asked']} / {r['opset_written'] or '-'} | {r['batch']} | {r['kind']} | "
            f"{r['megabytes'] or '-'} | {r['loads']} | {r['load_s'] or '-'} | {r['cosine_torch'] or '-'} | {r['cosine_onnxruntime'] or '-'} | "
            f"{r['gradient'] or '-'} | {r['score_row'] or '-'} | {r['error'] or ''} |"
        )
    table.write_text("\n".join(lines) + "\n")
    print(f"wrote {table}: {len(rows)} files, {loads} load, {good} load, give gradients and score")


# ---- converters compared --------------------------------------------------------------------


def _converters() -> dict:
    found = {}
    from faceqan.models.onnx_module import load_onnx

    found["faceqan"] = lambda file: load_onnx(file)
    try:
        from onnx2torch import convert

        found["onnx2torch"] = lambda file: convert(str(file)).eval()
    except ImportError as exc:
        print(f"onnx2torch: not importable here ({exc})")
    try:
        import onnx
        from onnx2pytorch import ConvertModel

        found["onnx2pytorch"] = lambda file: ConvertModel(onnx.load(str(file)), experimental=True).eval()
    except ImportError as exc:
        print(f"onnx2pytorch: not importable here ({exc})")
    return found


def _fwd_bwd_ms(network, size: int, faces: int, repeats: int) -> float:
    x = torch.rand(faces, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    times = []
    for _ in range(repeats + 1):
        x = x.detach().requires_grad_(True)
        start = time.perf_counter()
        (grad,) = torch.autograd.grad(network(x).sum(), x)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times[1:])) / faces


def compare(args: argparse.Namespace) -> None:
    converters = _converters()
    files = sorted(f for f in args.out.glob("*.onnx") if not f.name.endswith(".partial.onnx"))
    if not files:
        sys.exit(f"model_corpus: no corpus files in {args.out}: build them first")
    print(f"{len(files)} files in {args.out}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    counts = {name: 0 for name in converters}
    for file in [] if args.speed_only else files:
        cells = []
        for name, convert in converters.items():
            try:
                start = time.perf_counter()
                network = convert(file)
                load = time.perf_counter() - start
                size = 160 if file.name.startswith("inception") else 112
                shape = (1, size, size, 3) if file.name.startswith("tf-style") else (1, 3, size, size)
                x = (torch.rand(shape) * 2 - 1).requires_grad_(True)
                # faceqan's module takes NCHW and transposes for an NHWC graph itself
                out = network(x.permute(0, 3, 1, 2) if getattr(network, "channels_last", False) else x)
                (gradient,) = torch.autograd.grad(out.sum(), x)
                ref = torch.from_numpy(onnxruntime_embeddings(file, x.detach().numpy(), True))
                cosine = _cosine(out.detach(), ref)
                ok = cosine > 0.999 and torch.isfinite(gradient).all() and bool((gradient != 0).any())
                counts[name] += ok
                cells.append(f"{name} {'ok' if ok else 'WRONG'} {cosine:.5f} {load:.1f}s")
            except Exception as exc:
                cells.append(f"{name} fails: {type(exc).__name__}: {str(exc).splitlines()[0][:80] if str(exc) else ''}")
        print(f"{file.name}: " + " | ".join(cells), flush=True)
    if not args.speed_only:
        print("coverage (loads, matches onnxruntime to 0.999, gives a gradient): " + ", ".join(f"{n} {c}/{len(files)}" for n, c in counts.items()))
    r50 = args.out / "iresnet50-torchscript-17-batchdynamic.onnx"
    if r50.exists():
        native = build("iresnet50", args.small)
        print(f"IResNet-50 forward + backward, ms per face (batch {args.faces}, median of {args.repeats}):")
        print(f"  torch module itself: {_fwd_bwd_ms(native, 112, args.faces, args.repeats):.1f}")
        for name, convert in converters.items():
            try:
                print(f"  {name}: {_fwd_bwd_ms(convert(r50), 112, args.faces, args.repeats):.1f}")
            except Exception as exc:
                print(f"  {name}: fails ({type(exc).__name__})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/model_corpus"), help="folder of the corpus files and corpus.csv")
    parser.add_argument("--small", action="store_true", help="test-size architectures (minutes instead of an hour)")
    parser.add_argument("--only", nargs="*", help="architectures to build (default: all, and tf-style)")
    parser.add_argument("--table", type=Path, help="write the generated Markdown table of corpus.csv here")
    parser.add_argument("--compare", action="store_true", help="compare the converters that import here on the files in --out")
    parser.add_argument("--speed-only", action="store_true", help="with --compare: only the IResNet-50 timing")
    parser.add_argument("--faces", type=int, default=4, help="batch for the speed comparison")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    if args.compare:
        compare(args)
    elif args.table and (args.out / "corpus.csv").exists() and not args.only:
        write_table(args.out / "corpus.csv", args.table)
    else:
        build_and_check(args)
        if args.table:
            write_table(args.out / "corpus.csv", args.table)


if __name__ == "__main__":
    main()
