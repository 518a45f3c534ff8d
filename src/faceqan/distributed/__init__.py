"""Scoring on a Ray cluster with the rows of a local run: ``faceqan score --engine ray``.

``connect`` starts or joins Ray, ``score`` turns paths (or a Ray Dataset of paths or image
bytes) into a Ray Dataset of rows, ``write`` streams them into a folder of Parquet files,
``run`` is the command's resumable whole. Needs ``pip install 'faceqan[ray]'``.
"""

from ..extras import require

require("ray.data", "ray", "the ray engine (faceqan.distributed)")

from .engine import ActorPlan, RayConnectionError, connect, plan_actors, plan_for_nodes, run, score, write  # noqa: E402
from .job import ScoringJob  # noqa: E402
from ..sinks import read_folder  # noqa: E402

__all__ = ["ActorPlan", "RayConnectionError", "ScoringJob", "connect", "plan_actors", "plan_for_nodes", "read_folder", "run", "score", "write"]
