"""The ``faceqan`` command: thin wrappers around the library.

Exit codes: 0 every input scored; 3 the run finished but some inputs failed (see their
rows); 2 the run could not start (bad arguments, missing input or model, output clash);
130 interrupted by Ctrl-C after writing every finished batch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .version import __version__
from .algorithm import VARIANTS
from .allocator import keep_freed_memory
from .faces.decode import DEFAULT_MAX_PIXELS
from .evaluation.datasets import PROTOCOL_KINDS
from .faces.prepare import FACE_POLICIES, LANDMARK_MODES

EXIT_OK, EXIT_START_FAILED, EXIT_SOME_FAILED, EXIT_INTERRUPTED = 0, 2, 3, 130



def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value

def _add_faceqan_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="dlib", help="built-in FR model (see `faceqan models`) or a model file; default dlib")
    parser.add_argument("--arch", default=None, help="model file type: onnx, torchscript, or r18/r34/r50/r100/r200 for an insightface IResNet state dict")
    parser.add_argument("--input-size", type=int, default=None, help="model file input size (default: from the ONNX graph, else 112)")
    parser.add_argument("--input-mean", type=float, default=None, help="model file normalisation (pixel - mean) / std; default 127.5")
    parser.add_argument("--input-std", type=float, default=None, help="default 127.5 (0 and 1 for ONNX graphs that normalise themselves)")
    parser.add_argument("--bgr", action="store_true", help="model file expects BGR channel order")
    parser.add_argument("--eps", type=float, default=None, help="attack strength eps in [-1, 1] pixel units (default: the model's, see `faceqan models`; the paper's is 0.001)")
    parser.add_argument("--steps", "-l", type=int, default=None, help="BIM iterations l (default 5)")
    parser.add_argument("--copies", "-k", type=int, default=None, help="noisy copies k (default 10)")
    parser.add_argument("--power", "-p", type=float, default=None, help="exponent p of the final score (default 5)")
    parser.add_argument("--variant", choices=VARIANTS, default=None, help="paper (section III, default) or official (its code)")
    parser.add_argument("--seed", type=int, default=None, help="noise seed (FaceQAN, SER-FIQ, random); same seed, same scores (default 0)")
    parser.add_argument("--student", default=None, metavar="FILE", help="a student file from `faceqan distill` (implies --method faceqan-student; default: the one shipped for the model)")
    parser.add_argument("--froq-layers", default=None, metavar="FILE", help="FROQ layers from `faceqan calibrate-froq` (for --method froq; default: the ones shipped for the model)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    parser.add_argument("--batch-size", type=positive_int, default=None, help="images per batch (default: 32 on GPU; on CPU 1, or one per core up to 8 for models scored faster side by side: dlib)")


def _add_landmarks_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--landmarks", choices=LANDMARK_MODES, default="refined", help="refined (default): each face's landmarks detected again at a fixed scale and on its mirror image, averaged (3 detections per face); single: the first detection's landmarks")


def _add_face_options(parser: argparse.ArgumentParser) -> None:
    """Detection and decoding options shared by score and serve."""
    parser.add_argument("--min-face-size", type=float, default=0.0, help="ignore faces smaller than this many pixels")
    parser.add_argument("--min-det-score", type=float, default=0.6, help="detector confidence threshold (default 0.6)")
    parser.add_argument("--max-pixels", type=positive_int, default=DEFAULT_MAX_PIXELS, help="refuse larger images (default 50M)")
    _add_landmarks_option(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="faceqan", description="Face image quality for a given face recognition model (FaceQAN).")
    parser.add_argument("--version", action="version", version=f"faceqan {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    score = commands.add_parser("score", help="score image files, folders or path lists into a CSV / JSONL / Parquet file")
    score.add_argument("inputs", nargs="+", help="image or video files, folders (recursive, images) or .txt files listing paths")
    score.add_argument("-o", "--output", required=True, help="output file: .csv, .jsonl or .parquet; with --engine ray a folder of Parquet files")
    score.add_argument("--method", default="faceqan", help="quality method (default faceqan; see `faceqan methods`)")
    score.add_argument("--scale", default=None, metavar="FILE", help="0-100 scale for the quality_0_100 column (from `faceqan scale`; default: the built-in one where it fits the settings)")
    _add_faceqan_options(score)
    score.add_argument("--aligned", action="store_true", help="inputs are already aligned for the model: skip detection")
    score.add_argument("--faces", choices=FACE_POLICIES, default="largest", help="which faces to score (default largest)")
    score.add_argument("--frame-step", type=positive_int, default=1, help="score every Nth frame of video inputs (default 1: every frame)")
    _add_face_options(score)
    score.add_argument("--resume", action="store_true", help="continue an interrupted run: skip inputs already in the output")
    score.add_argument("--save-chips", default=None, metavar="DIR", help="also write each scored face's aligned chip as DIR/<stem>_<path hash>_face<N>.png")
    score.add_argument("--quiet", action="store_true", help="no progress bar")
    ray = score.add_argument_group("many machines (--engine ray; pip install 'faceqan[ray]')")
    ray.add_argument("--engine", choices=("local", "ray"), default="local", help="local (default): this process; ray: a Ray cluster, or a local Ray started for the run")
    ray.add_argument("--ray-address", default=None, help="join a running cluster: auto, HOST:PORT or ray://HOST:10001 (default: start a local Ray)")
    ray.add_argument("--num-cpus", type=positive_int, default=None, help="CPUs of the local Ray started without --ray-address (default: what Ray detects, a container's limit included)")
    ray.add_argument("--actors", type=int, default=None, help="scoring actors, each holding the model (default: as many as each node's GPUs hold with --gpus-per-actor, else as many as each node's CPUs hold at the smallest node's share)")
    ray.add_argument("--gpus-per-actor", type=float, default=None, help="GPUs each actor reserves (default 0: CPU; 1 with --device cuda)")
    ray.add_argument("--cpus-per-actor", type=float, default=None, help="CPUs each actor reserves and uses as torch threads, rounded up (default: 1 with GPUs, else the smallest node's cores less 0.5 for preparation)")
    ray.add_argument("--rows-per-file", type=positive_int, default=1000, help="rows gathered into each Parquet file; what a killed run may have to redo per writer (default 1000)")

    serve = commands.add_parser("serve", help="score uploaded images over HTTP (POST /score, GET /health)")
    serve.add_argument("--method", default="faceqan", help="quality method (default faceqan; see `faceqan methods`)")
    serve.add_argument("--scale", default=None, metavar="FILE", help="0-100 scale for quality_0_100 (from `faceqan scale`)")
    _add_faceqan_options(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)")
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080; 0: any free port, printed at start)")
    serve.add_argument("--max-bytes", type=positive_int, default=None, help="largest accepted upload in bytes (default 20 MiB, ServiceLimits' own)")
    serve.add_argument("--max-wait-ms", type=float, default=5.0, help="how long a batch waits for more requests' faces, up to --batch-size (default 5 ms)")
    serve.add_argument("--max-queue", type=int, default=None, help="faces handed to scoring and not yet answered before requests get 503 + Retry-After (default: one batch on the CPU, two on a GPU); a request's faces are admitted whole when none wait")
    serve.add_argument("--max-request-faces", type=positive_int, default=None, help="faces one request may bring: 413 beyond (default 64)")
    serve.add_argument("--max-decodes", type=int, default=None, help="images decoded and detected at once (default: one per core); as many more may wait, then 503")
    serve.add_argument("--max-connections", type=positive_int, default=512, help="uvicorn's limit_concurrency: connections plus requests in progress at once, 503 beyond (default 512)")
    serve.add_argument("--max-buffered-bytes", type=positive_int, default=None, help="bytes of uploads held at once across requests before 503 (default 256 MiB)")
    serve.add_argument("--max-explains", type=positive_int, default=1, help="/explain attacks at once, apart from scoring's decodes; as many more may wait, then 503 (default 1)")
    serve.add_argument("--read-timeout", type=float, default=30.0, help="seconds to receive a body before 408 (default 30)")
    serve.add_argument("--deadline", type=float, default=120.0, help="seconds a request may take before 504 (default 120)")
    serve.add_argument("--grace", type=float, default=None, help="on SIGTERM / Ctrl-C, seconds for requests in flight to finish (default: --deadline, so none is cut short)")
    serve.add_argument("--drain", type=float, default=5.0, help="on SIGTERM / Ctrl-C, seconds /ready answers 503 while requests are still served, before the server stops accepting (default 5; a second signal skips it)")
    serve.add_argument("--keep-alive", type=float, default=75.0, help="seconds an idle keep-alive connection stays open (default 75: above common load balancers' 60 s idle time-out, so they never reuse a closed one)")
    serve.add_argument("--api-key", default=None, help="require this key on /score (X-API-Key header or Authorization: Bearer); default $FACEQAN_API_KEY (a key on the command line shows in `ps`: prefer --api-key-file)")
    serve.add_argument("--api-key-file", default=None, metavar="FILE", help="read the key from this file (its first line)")
    serve.add_argument("--insecure", action="store_true", help="allow listening on a non-loopback address without an API key")
    _add_face_options(serve)
    serve.add_argument("--quiet", action="store_true", help="no request log")

    calibrate = commands.add_parser("calibrate", help="choose eps for a model: the eps at which the attack lowers the median mean_sim to a target")
    calibrate.add_argument("inputs", nargs="+", help="face images (files, folders, .txt lists): a few dozen typical ones")
    _add_faceqan_options(calibrate)
    calibrate.add_argument("--aligned", action="store_true", help="inputs are already aligned for the model: skip detection")
    calibrate.add_argument("--target-sim", type=float, default=None, help="median mean_sim to reach (default 0.96, what dlib's View-1-chosen eps gives)")
    calibrate.add_argument("--max-images", type=positive_int, default=50, help="use at most this many faces (default 50)")

    demo = commands.add_parser("demo", help="score a built-in photo and degraded copies of it, and rank them")
    _add_faceqan_options(demo)

    commands.add_parser("models", help="list the built-in FR models and their input specs")

    report = commands.add_parser("report", help="one HTML page about score files: statuses, quality distribution, ranked faces, lowest faces with noise maps, failures")
    report.add_argument("scores", nargs="+", help="`faceqan score` outputs (several: distributions overlaid)")
    report.add_argument("-o", "--output", required=True, help="the HTML file to write")
    report.add_argument("--sheet", type=positive_int, default=60, help="faces on the ranked sheet, spread evenly over the ranks (default 60)")
    report.add_argument("--lowest", type=int, default=12, help="lowest-scored faces shown with their noise maps (default 12)")
    report.add_argument("--no-noise-maps", action="store_true", help="skip the noise maps (they rerun FaceQAN on the lowest faces)")

    explain = commands.add_parser("explain", help="a PNG panel per face: the chip, its mirror and FaceQAN's adversarial noise, with the score's parts")
    explain.add_argument("inputs", nargs="+", help="image or video files, folders or .txt lists, as for score")
    explain.add_argument("-o", "--output", required=True, help="folder for the panels")
    _add_faceqan_options(explain)
    explain.add_argument("--aligned", action="store_true", help="inputs are already aligned for the model: skip detection")
    explain.add_argument("--faces", choices=FACE_POLICIES, default="largest", help="which faces (default largest)")
    explain.add_argument("--frame-step", type=positive_int, default=1, help="every Nth frame of video inputs")
    _add_face_options(explain)
    commands.add_parser("methods", help="list the quality methods and their options")

    scale = commands.add_parser("scale", help="fit a 0-100 scale on score files: a score's value is the share of these faces it beats")
    scale.add_argument("scores", nargs="+", help="`faceqan score` outputs of one model and setting, of faces like those you will score")
    scale.add_argument("-o", "--output", required=True, help="scale file to write (.json); use it with score --scale")
    scale.add_argument("--reference", default="your reference faces", help="what the faces are, for the file and the report")

    export = commands.add_parser("export", help="write the one-pass student as one ONNX file (chips in, quality out; runs in onnxruntime without PyTorch)")
    export.add_argument("-o", "--output", required=True, help="ONNX file to write")
    export.add_argument("--method", default="faceqan-student", help="what to export: faceqan-student (the only method that is one forward pass)")
    _add_faceqan_options(export)

    pick = commands.add_parser("pick", help="best shots: track the faces of videos, frame folders or live sources and keep each person's best")
    pick.add_argument("inputs", nargs="*", help="video files or folders of frames (in name order)")
    pick.add_argument("--source", action="append", default=[], metavar="CAMERA|URL", help="a live source: camera index (0) or stream URL (rtsp://, http://); ends when it stops sending or on Ctrl-C")
    pick.add_argument("-o", "--output", required=True, help="folder for picks.csv and each track's crops and frames")
    pick.add_argument("--top", type=positive_int, default=1, help="best faces kept per track (default 1)")
    pick.add_argument("--method", default="faceqan-student", help="quality method (default faceqan-student: one pass; faceqan is ~50x slower)")
    pick.add_argument("--frame-step", type=positive_int, default=1, help="look at every Nth frame (default 1)")
    pick.add_argument("--min-quality", type=float, default=None, help="keep only faces of at least this quality (a track without one gets a below_min_quality row)")
    pick.add_argument("--track-similarity", type=float, default=None, help="cosine similarity of two embeddings of one person (default: the built-in model's; required for model files)")
    pick.add_argument("--min-track-faces", type=positive_int, default=3, help="drop tracks seen in fewer sampled frames, most are false detections (default 3)")
    pick.add_argument("--max-gap", type=float, default=1.0, help="seconds without a face after which a track ends (default 1)")
    pick.add_argument("--fps", type=float, default=None, help="frame rate for times (default: the video's; 25 for folders)")
    _add_faceqan_options(pick)
    _add_face_options(pick)

    froq = commands.add_parser("calibrate-froq", help="choose a model's FROQ layers (activation norms) on pseudo-labels from the same model; no training")
    froq.add_argument("inputs", nargs="+", help="face photos: files, folders, .txt lists (e.g. LFW View 1's training images)")
    froq.add_argument("--model", default="dlib", help="built-in FR model or a model file (--arch, --input-* and --bgr read it)")
    froq.add_argument("-o", "--output", required=True, help="layers file to write (.json); use it with --method froq --froq-layers FILE")
    froq.add_argument("--max-layers", type=positive_int, default=4, help="most stage maps to choose (default 4)")
    froq.add_argument("--batch-size", type=positive_int, default=16)
    froq.add_argument("--seed", type=int, default=0, help="seed of the degraded copies (default 0)")
    froq.add_argument("--arch", default=None)
    froq.add_argument("--input-size", type=int, default=None)
    froq.add_argument("--input-mean", type=float, default=None)
    froq.add_argument("--input-std", type=float, default=None)
    froq.add_argument("--bgr", action="store_true")
    froq.add_argument("--quiet", action="store_true")

    distill = commands.add_parser("distill", help="train a one-pass student of FaceQAN from `faceqan score` outputs of one model")
    distill.add_argument("scores", nargs="+", help="FaceQAN score files (CSV / JSONL / Parquet, with their .settings.json)")
    distill.add_argument("--model", default="dlib", help="the FR model the scores were made with (built-in name or model file)")
    distill.add_argument("-o", "--output", required=True, help="student file to write (.pt)")
    distill.add_argument("--cache", default=".faceqan-cache", help="cache folder for the features")
    distill.add_argument("--batch-size", type=positive_int, default=16)
    distill.add_argument("--seed", type=int, default=0, help="seed of the cross-validation folds (default 0)")
    distill.add_argument("--disjoint-from", action="append", default=[], metavar="PROTOCOL", help="a protocol the student will be judged on: refuse labels of its people (repeatable)")
    distill.add_argument("--refine-labels", type=float, default=0.0, metavar="THETA", help="identity-based label refinement step in [0, 1] (default 0: the teacher's labels as they are)")
    distill.add_argument("--finetune-blocks", type=positive_int, default=None, metavar="N", help="fine-tune copies of the model's last N residual blocks with a linear head instead of a ridge head on pooled features (built-in dlib: 3; models with blocks at network.blocks; for an ONNX graph N counts convolutions, cut after a block boundary)")
    distill.add_argument("--finetune-rank", type=positive_int, default=None, metavar="R", help="with --finetune-blocks: tune only rank-R changes of the blocks' conv weights and their biases (LoRA): a small file that takes the rest from the model")
    distill.add_argument("--epochs", type=positive_int, default=3, help="passes over the faces when fine-tuning (default 3)")
    distill.add_argument("--quiet", action="store_true")

    evaluate = commands.add_parser("evaluate", help="ERC / EDC of quality methods on a pairs protocol, with tables and plots")
    evaluate.add_argument("protocol", help="a pairs file or data set folder: LFW pairs .txt, CSV path1,path2,mated[,fold][,id1,id2], CFP, XQLFW, CALFW, CPLFW, IJB-C folders, or a folder of identity sub-folders (all pairs)")
    evaluate.add_argument("--protocol", dest="protocol_kind", choices=PROTOCOL_KINDS, default="auto", help="how to read it (default auto: from what the path holds; CFP needs cfp-fp or cfp-ff)")
    evaluate.add_argument("--identity-from", default=None, metavar="parent|grandparent|REGEX", help="identity of each image from its path, for CSV (without id1,id2) and folder protocols (default parent)")
    evaluate.add_argument("--all-pairs", action="store_true", help="use every pair among the protocol's images")
    evaluate.add_argument("--max-images", type=positive_int, default=None, help="keep the protocol's first N images and the pairs among them")
    evaluate.add_argument("--aligned", action="store_true", help="the images are already aligned for the models (e.g. XQLFW's 112x112 chips with ArcFace-style models): skip detection")
    evaluate.add_argument("--comparison-model", default="dlib", help="FR model whose errors are measured: built-in name or model file (default dlib); --arch, --input-* and --bgr read model files")
    evaluate.add_argument("--quality-model", default=None, help="FR model the quality methods use: name or file (default: the comparison model)")
    evaluate.add_argument("--method", action="append", default=[], help="quality computed on the fly, any of `faceqan methods` (faceqan, faceqan-student, serfiq, flip, ...; repeatable)")
    evaluate.add_argument("--quality-csv", action="append", default=[], metavar="NAME=FILE[:COLUMN]", help="qualities from a `faceqan score` output (column default quality); listed first, so paired intervals are against it")
    _add_faceqan_options(evaluate)
    evaluate.add_argument("--fmr", type=float, default=1e-3, help="target FMR of the ERC threshold and the EDC's fixed threshold (default 1e-3)")
    evaluate.add_argument("--edc-limit", type=float, default=0.2, help="pAUC discard limit (default 0.2)")
    evaluate.add_argument("--edc-start-fnmr", type=float, default=None, help="fix the EDC's threshold at this FNMR on all mated pairs (e.g. 0.05) instead of at --fmr")
    evaluate.add_argument("--pair-quality", choices=("min", "mean", "product"), default="min")
    evaluate.add_argument("--bootstrap", type=int, default=100, help="bootstrap resamples over identities for the 95%% intervals (0: none)")
    evaluate.add_argument("--random-seeds", type=int, default=10, help="seeds of the random-quality baseline (default 10)")
    evaluate.add_argument("--out", default="evaluation", help="output folder (results.csv, results.md, operating_points.csv, qualities.csv, erc.png, edc.png)")
    evaluate.add_argument("--cache", default=".faceqan-cache", help="cache folder for embeddings and qualities")
    evaluate.add_argument("--quiet", action="store_true")
    _add_landmarks_option(evaluate)
    return parser


def _file_options(args: argparse.Namespace) -> dict:
    """The options that read a model file (--arch, --input-*, --bgr), those given."""
    pairs = [("arch", args.arch), ("input_size", args.input_size), ("input_mean", args.input_mean), ("input_std", args.input_std), ("bgr", args.bgr or None)]
    return {name: value for name, value in pairs if value is not None}


def _model(args: argparse.Namespace):
    """The FR model the options name, on the device they name (checked first)."""
    from .devices import resolve_device
    from .models import create_model

    return create_model(args.model, resolve_device(args.device), **_file_options(args))


def _method_choice(args: argparse.Namespace, name: str = "faceqan") -> tuple[str, dict]:
    """The method's name and the options given on the command line (None: not given)."""
    from .methods import given_options

    options = given_options(vars(args))
    if name == "faceqan" and options["student"] is not None:
        name = "faceqan-student"  # --student FILE alone picks the student
    return name, options


def _scale(args: argparse.Namespace):
    """The 0-100 scale of ``--scale``, if given."""
    if not getattr(args, "scale", None):
        return None
    from .scale import load_scale

    return load_scale(args.scale)


def _method(args: argparse.Namespace, model, name: str = "faceqan"):
    """The quality method ``name`` with the options given on the command line (an option the
    method does not take is an error), on the 0-100 scale of ``--scale`` if given."""
    from .methods import create_method

    name, options = _method_choice(args, name)
    method = create_method(name, model, **options)
    if (scale := _scale(args)) is not None:
        method.use_scale(scale)
    return method


def _preparation(args: argparse.Namespace) -> dict:
    """``FacePreparer``'s options from the command line (score and explain)."""
    names = ("aligned", "faces", "min_face_size", "min_det_score", "max_pixels", "landmarks")
    return {name: getattr(args, name) for name in names}


def cmd_score(args: argparse.Namespace) -> int:
    from .faces.prepare import FacePreparer
    from .pipeline import collect_inputs
    from .runner import run_scoring, scoring_settings
    from .sinks import output_format

    if args.engine == "ray":
        return _score_on_ray(args)
    output_format(args.output)  # an unsupported output fails now, not after scoring
    paths = collect_inputs(args.inputs, args.frame_step)
    if not paths:
        print("faceqan: no input images found", file=sys.stderr)
        return EXIT_START_FAILED
    model = _model(args)
    method = _method(args, model, args.method)
    preparer = FacePreparer(model.spec, **_preparation(args))
    settings = scoring_settings(args.model, model, method, preparer.settings(), _file_options(args))
    if args.save_chips:
        from .faces.chips import ChipSaver

        preparer = ChipSaver(preparer, args.save_chips)
    batch_size = args.batch_size or method.default_batch_size()
    summary = run_scoring(paths, args.output, method, preparer, settings, batch_size, args.resume, not args.quiet)
    return _report_run(summary, args.output)


def _score_on_ray(args: argparse.Namespace) -> int:
    """``faceqan score --engine ray``: the same options, rows and resume rules, on Ray."""
    from .pipeline import collect_inputs

    if args.save_chips:
        raise ValueError("--save-chips works with the local engine only")
    from . import distributed  # a missing ray stops here, with the extra to install
    paths = collect_inputs(args.inputs, args.frame_step)
    if not paths:
        print("faceqan: no input images found", file=sys.stderr)
        return EXIT_START_FAILED
    gpus = args.gpus_per_actor if args.gpus_per_actor is not None else (1.0 if args.device.startswith("cuda") else 0.0)
    method, options = _method_choice(args, args.method)
    given = {key: value for key, value in options.items() if value is not None}
    job = distributed.ScoringJob(args.model, _file_options(args), method, given, _scale(args), _preparation(args))
    summary = distributed.run(
        paths, args.output, job, resume=args.resume, actors=args.actors, gpus_per_actor=gpus, cpus_per_actor=args.cpus_per_actor,
        batch_size=args.batch_size, rows_per_file=args.rows_per_file, address=args.ray_address, quiet=args.quiet, num_cpus=args.num_cpus,
    )  # fmt: skip
    return _report_run(summary, args.output)


def _report_run(summary, output: str) -> int:
    """The closing line of a scoring run, and its exit code."""
    done = sum(summary.statuses.values())
    per_image = summary.seconds / max(1, summary.total_inputs - summary.skipped)
    print(
        f"faceqan: {summary.total_inputs} inputs, {summary.skipped} already done, {done} rows written "
        f"({', '.join(f'{s} {n}' for s, n in sorted(summary.statuses.items())) or 'none'}) "
        f"in {summary.seconds:.1f} s ({per_image:.2f} s per image) -> {output}",
        file=sys.stderr,
    )
    if summary.interrupted:
        print("faceqan: interrupted; rerun the same command with --resume to finish", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_SOME_FAILED if summary.failed else EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import demo_rows, demo_table

    model = _model(args)
    method = _method(args, model)
    print(demo_table(args.model, method, demo_rows(model, method)))
    return EXIT_OK


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: treat as reachable from outside
        return False


def uvicorn_config(app, args: argparse.Namespace):
    """The ASGI server's settings for ``faceqan serve``: connections bounded (503 beyond), idle
    keep-alives closed after ``--keep-alive`` seconds, requests in flight given ``--grace`` seconds
    (default ``--deadline``) at shutdown."""
    import uvicorn

    grace = args.grace if args.grace is not None else args.deadline
    return uvicorn.Config(
        app, log_level="warning" if args.quiet else "info", timeout_keep_alive=args.keep_alive,
        timeout_graceful_shutdown=grace, limit_concurrency=args.max_connections,
    )  # fmt: skip


def _key_from_file(path: str | None) -> str | None:
    """The API key in ``path`` (its first line), if a file is named; an empty file is refused."""
    if path is None:
        return None
    lines = Path(path).read_text().splitlines()
    if not lines or not lines[0].strip():
        raise ValueError(f"{path}: the API key file is empty")
    return lines[0].strip()


def cmd_serve(args: argparse.Namespace) -> int:
    import os
    import signal
    import socket

    from .extras import require
    from .runner import scoring_settings
    from .service import QualityService
    from .service.app import ServiceLimits, create_app

    require("uvicorn", "serve", "faceqan serve")
    from .service.server import DrainingServer

    api_key = args.api_key or _key_from_file(args.api_key_file) or os.environ.get("FACEQAN_API_KEY") or None
    if not _is_loopback(args.host) and api_key is None and not args.insecure:
        raise ValueError(f"listening on {args.host} without an API key: set --api-key (or FACEQAN_API_KEY), or pass --insecure")
    model = _model(args)
    method = _method(args, model, args.method)
    preparer_options = {"min_face_size": args.min_face_size, "min_det_score": args.min_det_score, "max_pixels": args.max_pixels, "landmarks": args.landmarks}
    preparation = {key: value for key, value in preparer_options.items() if key != "max_pixels"}  # aligned, faces: per request
    settings = scoring_settings(args.model, model, method, preparation, _file_options(args))
    # Bounded latency first (benchmarks/service_load.py): on the CPU one face at a time and none
    # waiting beyond it (p99 at 4x the capacity 1.3x the p99 at 1x; batches of 2 side by side
    # and a queue of 2 batches served 20 % more but at 2.9x the latency); on a GPU batches of 32, two queued.
    on_cpu = method.device.type == "cpu"
    batch = args.batch_size or (1 if on_cpu else method.default_batch_size())
    max_queue = args.max_queue if args.max_queue is not None else (batch if on_cpu else 2 * batch)
    per_request = {"max_request_faces": args.max_request_faces} if args.max_request_faces else {}
    service = QualityService(model, method, settings, batch, args.max_wait_ms / 1000, max_queue, **per_request, **preparer_options)
    from .devices import usable_cpus

    limits = ServiceLimits(max_decodes=args.max_decodes or usable_cpus(), max_explains=args.max_explains, read_timeout=args.read_timeout, deadline=args.deadline)
    if args.max_bytes is not None:
        limits.max_bytes = args.max_bytes
    if args.max_buffered_bytes is not None:
        limits.max_buffered_bytes = args.max_buffered_bytes
    app = create_app(service, limits, api_key)
    listener = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((args.host, args.port))
    listener.listen(2048)  # connections made before uvicorn starts wait in the backlog
    host, port = listener.getsockname()[:2]
    config = uvicorn_config(app, args)
    # On SIGINT / SIGTERM: --drain seconds of /ready 503, then uvicorn's graceful shutdown (requests in flight get --grace seconds),
    # then raises the signal again for the handler it found: a no-op here, so the exit is 0.
    # Installed before the address is printed, so a signal right after it is graceful too.
    quiet_handlers = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    print(f"faceqan: serving {args.model} on http://{host}:{port} (POST /score, GET /health /ready /metrics /docs); Ctrl-C or SIGTERM stops", file=sys.stderr, flush=True)
    try:
        DrainingServer(config, service, args.drain).run(sockets=[listener])
    finally:
        for sig, handler in quiet_handlers.items():
            signal.signal(sig, handler)
        service.close()
    return EXIT_OK


def cmd_calibrate(args: argparse.Namespace) -> int:
    from collections import Counter

    from .calibration import DEFAULT_TARGET_SIMILARITY, calibrate_eps
    from .faces.prepare import FacePreparer
    from .pipeline import chips_to_tensor, collect_inputs

    if _method_choice(args)[0] != "faceqan":
        raise ValueError("calibrate tunes FaceQAN's eps, which a student (--student) does not have: calibrate without --student")
    from .algorithm import PAPER_EPS

    model = _model(args)
    if args.eps is None and model.spec.default_eps is None:
        args.eps = PAPER_EPS  # the search's first try for a model nobody calibrated
    method = _method(args, model)  # checks the options; calibration varies its eps
    preparer = FacePreparer(model.spec, args.aligned)
    chips, failures = [], Counter()
    for path in collect_inputs(args.inputs):
        for face in preparer(path):
            if face.chip is not None:
                chips.append(face.chip)
            else:
                failures[face.status] += 1
        if len(chips) >= args.max_images:
            break
    if not chips:
        found = ", ".join(f"{status} {count}" for status, count in sorted(failures.items()))
        print(f"faceqan: no face found in the inputs ({found or 'no inputs'})", file=sys.stderr)
        return EXIT_START_FAILED
    target = args.target_sim if args.target_sim is not None else DEFAULT_TARGET_SIMILARITY
    s = method.scorer
    result = calibrate_eps(
        model, chips_to_tensor(chips[: args.max_images]).to(method.device), target, s.eps, s.steps, s.copies, s.variant, s.seed
    )
    print(f"model {args.model}, {min(len(chips), args.max_images)} faces, l {s.steps}, k {s.copies}, {s.variant}: median mean_sim per eps")
    for eps, similarity in result.tried:
        print(f"  eps {eps:.6g}: {similarity:.4f}")
    print(f"eps {result.eps:.3g} gives a median mean_sim of {result.similarity:.4f} (target {target:g}): use --eps {result.eps:.3g}")
    return EXIT_OK


def cmd_models(args: argparse.Namespace) -> int:
    from .models import list_models

    for spec in list_models():
        print(spec.describe())
    print(
        "\nYour own model: --model PATH with an ONNX file (e.g. insightface w600k_r50.onnx), a TorchScript file,\n"
        "or an insightface arcface_torch IResNet state dict with --arch r18|r34|r50|r100|r200. Faces are aligned\n"
        "to the ArcFace 112x112 template; set --input-mean / --input-std / --bgr if the model differs from\n"
        "insightface's (pixel - 127.5) / 127.5 RGB."
    )
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from .explain.report import write_report

    path = write_report(args.scores, args.output, sheet_size=args.sheet, lowest=args.lowest, with_noise_maps=not args.no_noise_maps)
    print(f"faceqan: report written to {path}", file=sys.stderr)
    return EXIT_OK


def cmd_explain(args: argparse.Namespace) -> int:
    from .explain.run import explain_paths
    from .faces.prepare import FacePreparer
    from .methods import FaceQANMethod
    from .pipeline import collect_inputs

    paths = collect_inputs(args.inputs, args.frame_step)
    model = _model(args)
    method = _method(args, model)
    if not isinstance(method, FaceQANMethod):
        raise ValueError("explain shows FaceQAN's adversarial noise: --student does not apply")
    preparer = FacePreparer(model.spec, **_preparation(args))
    written = failed = 0
    for item in explain_paths(paths, preparer, method.scorer, args.output):
        if item.panel is None:
            failed += 1
            print(f"faceqan: {item.face.path}: {item.face.status}: {item.face.error}", file=sys.stderr)
        else:
            written += 1
    print(f"faceqan: {written} panels written to {args.output}, {failed} inputs without one", file=sys.stderr)
    return EXIT_SOME_FAILED if failed else EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from .student.export import OPSET, export_student

    name = _method_choice(args, args.method)[0]
    if name != "faceqan-student":
        raise ValueError(f"export writes the one-pass student (--method faceqan-student); {name!r} is not one forward pass")
    method = _method(args, _model(args), name)
    path = export_student(method, args.output)
    print(f"faceqan: the {args.model} student ({method.path.name}) as ONNX opset {OPSET}, input chips (N, 3, {method.model.spec.input_size}, {method.model.spec.input_size}) in [-1, 1] -> {path}", file=sys.stderr)
    return EXIT_OK


def cmd_pick(args: argparse.Namespace) -> int:
    from .faces.prepare import FacePreparer
    from .bestshots import FrameSource, PickWriter, TrackingSettings

    names = [*args.inputs, *args.source]
    if not names:
        raise ValueError("pick needs a video, a folder of frames or --source CAMERA|URL")
    tracking = TrackingSettings.for_model(args.model, args.track_similarity, max_gap=args.max_gap)
    sources = [FrameSource(name, args.frame_step, args.fps, args.max_pixels) for name in names]  # all checked before any work
    model = _model(args)
    method = _method(args, model, args.method)
    preparer = FacePreparer(model.spec, faces="all", min_face_size=args.min_face_size, min_det_score=args.min_det_score, max_pixels=args.max_pixels, landmarks=args.landmarks)
    writer = PickWriter(args.output)
    code = EXIT_OK
    try:
        for source in sources:
            _pick_one(source, model, method, preparer, tracking, args, writer)
    except KeyboardInterrupt:  # the tracks so far are written; Ctrl-C is how a live source is stopped
        code = EXIT_OK if any(source.live for source in sources) else EXIT_INTERRUPTED
    finally:
        writer.close()
    print(f"faceqan pick: {writer.rows} rows of {writer.tracks} tracks -> {writer.path}", file=sys.stderr)
    return code


def _pick_one(source, model, method, preparer, tracking, args: argparse.Namespace, writer) -> None:
    """Write the tracks of one source, then a line saying what was seen and why it stopped."""
    from .bestshots import Picker, pick_source

    picker = Picker(source.name, model, method, preparer, tracking, args.top, args.min_quality, args.min_track_faces)
    tracks_before = writer.tracks
    try:
        for track in pick_source(source, picker):
            writer.write(track)
    finally:
        counts = picker.counts
        skipped = f"; {len(source.skipped)} unreadable frame files skipped (first: {source.skipped[0][0]}: {source.skipped[0][1]})" if source.skipped else ""
        print(
            f"faceqan pick: {source.name}: {counts.frames} frames looked at (every {args.frame_step}), {counts.faces} faces, "
            f"{writer.tracks - tracks_before} tracks ({counts.short_tracks} shorter than {args.min_track_faces} faces dropped); stopped: {source.stop_reason or 'by an error'}{skipped}",
            file=sys.stderr,
        )


def cmd_calibrate_froq(args: argparse.Namespace) -> int:
    from .froq.calibrate import calibrate_froq
    from .models import create_model
    from .pipeline import collect_inputs

    paths = collect_inputs(args.inputs)
    if not paths:
        raise ValueError("calibrate-froq: no input images found")
    model = create_model(args.model, **_file_options(args))
    layers = calibrate_froq(paths, model, args.model, args.max_layers, args.batch_size, args.seed, not args.quiet)
    layers.save(args.output)
    report = layers.report
    print(
        f"faceqan: FROQ layers for {args.model} from {report['faces']} faces ({report['failed']} failed): stages {layers.chosen} of {layers.stages} "
        f"(signs {layers.signs}), Spearman with the pseudo-labels {report['spearman_after_each_layer']} -> {args.output}",
        file=sys.stderr,
    )
    return EXIT_OK


def cmd_scale(args: argparse.Namespace) -> int:
    from .scale import fit_scale

    scale = fit_scale(args.scores, args.reference)
    scale.save(args.output)
    median = scale.percentiles[50]
    print(f"faceqan: scale from {scale.reference}: quality {median:.4f} is 50, {scale.percentiles[10]:.4f} is 10 -> {args.output}", file=sys.stderr)
    return EXIT_OK


def cmd_distill(args: argparse.Namespace) -> int:
    from .models import create_model
    from .student.distill import distill

    model = create_model(args.model)
    head = distill(args.scores, model, args.model, args.output, args.cache, args.batch_size, not args.quiet, args.seed, tuple(args.disjoint_from),
                   args.refine_labels, args.finetune_blocks or 0, args.epochs, args.finetune_rank or 0)  # fmt: skip
    report = head.report
    if args.finetune_blocks:
        tuned = f"rank-{report['rank']} changes of the last {report['blocks']} blocks" if report["rank"] else f"the last {report['blocks']} blocks"
        how = f"{tuned} ({report['tensors']} tensors) fine-tuned for {report['epochs']} epochs"
    else:
        how = f"cross-validated Spearman with the teacher's q_adv {report['cv_spearman_q_adv']:.3f} (ridge penalty {head.penalty:g}; by penalty {report['cv_by_penalty']})"
    print(f"faceqan: student for {args.model} from {report['samples']} faces: {how} -> {args.output}", file=sys.stderr)
    return EXIT_OK


def cmd_methods(args: argparse.Namespace) -> int:
    from .methods import METHODS, method_options

    for name, cls in METHODS.items():
        print(f"{name}: {cls.summary}\n    columns: {', '.join(cls.columns)}; options: {', '.join(method_options(name)) or 'none'}")
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluation.run import EvaluationConfig, run_evaluation
    from .methods import given_options

    if args.model != "dlib":
        raise ValueError("evaluate takes its models from --comparison-model and --quality-model (names or model files); --model does not apply here")
    model_options = _file_options(args)
    config = EvaluationConfig(
        protocol=args.protocol, protocol_kind=args.protocol_kind, identity_from=args.identity_from, methods=args.method, quality_csv=args.quality_csv,
        all_pairs=args.all_pairs, max_images=args.max_images, comparison_model=args.comparison_model, quality_model=args.quality_model, model_options=model_options,
        method_options=given_options(vars(args)), landmarks=args.landmarks, aligned=args.aligned, fmr=args.fmr,
        edc_limit=args.edc_limit, edc_start_fnmr=args.edc_start_fnmr, pair_quality=args.pair_quality, bootstrap=args.bootstrap,
        random_seeds=args.random_seeds, out=args.out, cache=args.cache, device=args.device, batch_size=args.batch_size, quiet=args.quiet,
    )  # fmt: skip
    run_evaluation(config)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_START_FAILED if exc.code else EXIT_OK
    keep_freed_memory()
    commands = {"score": cmd_score, "serve": cmd_serve, "calibrate": cmd_calibrate, "demo": cmd_demo, "models": cmd_models, "methods": cmd_methods, "distill": cmd_distill, "export": cmd_export, "pick": cmd_pick, "calibrate-froq": cmd_calibrate_froq, "scale": cmd_scale, "explain": cmd_explain, "report": cmd_report, "evaluate": cmd_evaluate}
    try:
        return commands[args.command](args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:  # the run could not start: say why, in one line
        from .runner import RunError

        if isinstance(exc, (RunError, OSError, ValueError)):
            print(f"faceqan: {exc}", file=sys.stderr)
            return EXIT_START_FAILED
        raise


if __name__ == "__main__":
    sys.exit(main())
