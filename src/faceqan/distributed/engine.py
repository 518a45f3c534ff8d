"""Score on a Ray cluster (or a local Ray): collect inputs on the driver, prepare faces in CPU
tasks, score them in a pool of actors that each hold the model, write Parquet files as rows
arrive. The driver streams: it never holds the rows or the images."""

from __future__ import annotations

import logging
import math
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import ray
import ray.data

from ..runner import RunSummary, scoring_settings
from ..spec import ModelSpec
from .job import ScoringJob
from .output import ParquetFolderSink, open_folder
from .stages import PREPARE_CPUS, ScoreFaces, prepare_images

DEFAULT_ROWS_PER_FILE = 1000


class RayConnectionError(ConnectionError):
    """No Ray cluster at the address given."""


def connect(address: str | None = None, quiet: bool = False, num_cpus: int | None = None) -> bool:
    """Join the cluster at ``address`` ("auto", "HOST:PORT", "ray://HOST:10001"), or start a local
    Ray when None, with ``num_cpus`` CPUs or as many as Ray detects (it reads a container's CPU
    limit; os.cpu_count() gives the host's). True when this call started or joined Ray (and so
    should shut it down); False when Ray was already initialised by the caller."""
    ray.data.DataContext.get_current().enable_progress_bars = not quiet
    if ray.is_initialized():
        return False
    options = {"logging_level": logging.WARNING if not quiet else logging.ERROR, "log_to_driver": not quiet}
    if address is None:
        ray.init(num_cpus=num_cpus, include_dashboard=False, **options)
        return True
    if address != "auto":
        _probe(address)
    try:
        ray.init(address=address, **options)
    except Exception as exc:  # ConnectionError, or a time-out waiting for the head node
        raise RayConnectionError(f"cannot reach a Ray cluster at {address}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    return True


def _probe(address: str, timeout: float = 5.0) -> None:
    """Fail fast on an address with nothing listening: ray.init waits for it without end."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise RayConnectionError(f"--ray-address {address!r}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise RayConnectionError(f"cannot reach a Ray cluster at {address}: {exc}") from None


@dataclass(frozen=True)
class ActorPlan:
    """How many scoring actors, what each reserves, and the torch threads each uses."""

    actors: int
    cpus: float
    gpus: float
    threads: int

    @property
    def device(self) -> str:
        return "cuda" if self.gpus > 0 else "cpu"


def plan_actors(actors: int | None = None, gpus_per_actor: float = 0, cpus_per_actor: float | None = None) -> ActorPlan:
    """``plan_for_nodes`` on the live nodes of the Ray cluster."""
    return plan_for_nodes([node["Resources"] for node in ray.nodes() if node["Alive"]], actors, gpus_per_actor, cpus_per_actor)


def _fits(capacity: float, share: float) -> int:
    """Actors of ``share`` that fit in ``capacity`` (a hair of float slack: 1.5 fits 1.5)."""
    return int(capacity / share + 1e-9) if share > 0 else 0


def plan_for_nodes(nodes: list[dict], actors: int | None = None, gpus_per_actor: float = 0, cpus_per_actor: float | None = None) -> ActorPlan:
    """Node by node (``nodes``: each live node's resources), since every actor of a pool reserves
    the same: on GPUs as many actors as each node's GPUs hold ``gpus_per_actor``, 1 CPU each; on
    CPUs each actor reserves the smallest node's cores less ``PREPARE_CPUS`` (left to the
    preparation tasks), so that every node hosts actors and a large one several, and uses as many
    torch threads as it reserves, rounded up. ``actors`` given: the cluster's CPUs shared among
    them, no more than the smallest node holds."""
    cpus_per_node = [node.get("CPU", 0) for node in nodes]
    if gpus_per_actor > 0:
        gpus = sum(node.get("GPU", 0) for node in nodes)
        if gpus < gpus_per_actor:
            raise ValueError(f"--gpus-per-actor {gpus_per_actor:g}: the Ray cluster has {gpus:g} GPUs")
        actors = actors or max(1, sum(_fits(node.get("GPU", 0), gpus_per_actor) for node in nodes))
        cpus = 1.0 if cpus_per_actor is None else cpus_per_actor
    else:
        smallest = min((c for c in cpus_per_node if c > PREPARE_CPUS), default=1.0)
        if cpus_per_actor is not None:
            cpus = cpus_per_actor
        elif actors:
            cpus = max(PREPARE_CPUS, min(smallest, sum(cpus_per_node) / actors) - PREPARE_CPUS)
        else:
            cpus = max(PREPARE_CPUS, smallest - PREPARE_CPUS)
        actors = actors or max(1, sum(_fits(c - PREPARE_CPUS, cpus) for c in cpus_per_node))
    if actors < 1 or cpus <= 0:
        raise ValueError("--actors and --cpus-per-actor must be positive")
    return ActorPlan(actors, cpus, gpus_per_actor, max(1, math.ceil(cpus)))


def score(
    inputs: Sequence[str] | ray.data.Dataset,
    job: ScoringJob | None = None,
    *,
    actors: int | None = None,
    gpus_per_actor: float = 0,
    cpus_per_actor: float | None = None,
    batch_size: int | None = None,
    skip: set[str] | frozenset[str] = frozenset(),
    spec: ModelSpec | None = None,
) -> ray.data.Dataset:
    """A Ray Dataset of result rows (faceqan score's columns), computed lazily as it is consumed.

    ``inputs``: paths (files as ``collect_inputs`` gives them, readable on every node), or a
    Ray Dataset with a ``path`` column and, optionally, the encoded image in a ``bytes`` column.
    ``skip``: paths to leave out (done by an earlier run); ``spec``: the model's input spec, if
    known (else read from the job). Ray must be initialised (``connect``).
    """
    job = job or ScoringJob()
    plan = plan_actors(actors, gpus_per_actor, cpus_per_actor)
    images_per_batch = batch_size or (32 if plan.gpus else 8)
    if isinstance(inputs, ray.data.Dataset):
        dataset = inputs.filter(lambda row: row["path"] not in skip) if skip else inputs
    else:
        dataset = ray.data.from_items([{"path": path} for path in inputs if path not in skip])
    prepared = dataset.map_batches(
        prepare_images, batch_format="pyarrow", batch_size=images_per_batch, num_cpus=PREPARE_CPUS,
        fn_kwargs={"job": job, "spec": spec or job.model_spec()},
    )  # fmt: skip
    return prepared.map_batches(
        ScoreFaces, batch_format="pyarrow", batch_size=images_per_batch,
        compute=ray.data.ActorPoolStrategy(size=plan.actors), num_cpus=plan.cpus, num_gpus=plan.gpus or None,
        fn_constructor_kwargs={"job": job, "device": plan.device, "threads": None if plan.gpus else plan.threads, "batch_size": batch_size},
    )  # fmt: skip


def write(rows: ray.data.Dataset, folder: str | Path, rows_per_file: int = DEFAULT_ROWS_PER_FILE) -> ParquetFolderSink:
    """Run the dataset into ``folder`` as Parquet files that each appear whole; the sink's
    ``statuses`` then counts the rows written."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    sink = ParquetFolderSink(folder, rows_per_file)
    rows.write_datasink(sink, ray_remote_args={"num_cpus": PREPARE_CPUS})
    return sink


def run(
    paths: Sequence[str],
    folder: str | Path,
    job: ScoringJob,
    *,
    resume: bool = False,
    actors: int | None = None,
    gpus_per_actor: float = 0,
    cpus_per_actor: float | None = None,
    batch_size: int | None = None,
    rows_per_file: int = DEFAULT_ROWS_PER_FILE,
    address: str | None = None,
    quiet: bool = False,
    num_cpus: int | None = None,
) -> RunSummary:
    """``faceqan score --engine ray``: the run's settings kept in ``folder`` (a resume must match
    them), inputs already there skipped, the rest scored and written. Ray is joined or started as
    ``connect`` does (and shut down after, if this call started it). The driver never builds the
    model: a Ray task does, for the settings (the weights' fingerprint) and the input spec."""
    if Path(folder).suffix.lower() in (".csv", ".jsonl") or Path(folder).is_file():
        open_folder(folder, {}, resume)  # refused (a file, not a folder) before Ray starts
    started = connect(address, quiet, num_cpus)
    start = time.perf_counter()
    summary = RunSummary(total_inputs=len(paths))
    try:
        settings, spec = ray.get(_settings_and_spec.remote(job))
        done = open_folder(folder, settings, resume)
        todo = [path for path in paths if path not in done]
        summary.skipped = len(paths) - len(todo)
        if todo:
            rows = score(todo, job, actors=actors, gpus_per_actor=gpus_per_actor, cpus_per_actor=cpus_per_actor, batch_size=batch_size, spec=spec)
            summary.statuses = write(rows, folder, rows_per_file).statuses
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        summary.seconds = time.perf_counter() - start
        if started:
            ray.shutdown()
    return summary


@ray.remote(num_cpus=PREPARE_CPUS)
def _settings_and_spec(job: ScoringJob) -> tuple[dict, ModelSpec]:
    """What a resume of this job must match, and the model's input spec: built on a worker."""
    model = job.build_model()
    method = job.build_method(model)
    return scoring_settings(job.model, model, method, job.build_preparer(model.spec).settings(), job.model_options), model.spec
