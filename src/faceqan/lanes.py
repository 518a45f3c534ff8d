"""Run independent pieces of CPU work side by side, each in its own thread with a share of
the intra-op threads: with 2 cores, dlib's attack ran 0.70 -> 0.55 s per image as two
one-thread lanes (one image each) against one image at a time on two threads (small
convolutions lose a lot to splitting every op over threads). SFace gained nothing either way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")


class CpuLanes:
    """A pool of up to ``torch.get_num_threads()`` lanes; ``map`` runs one item per lane at a
    time and keeps the items' order."""

    def __init__(self) -> None:
        self._pools: dict[int, ThreadPoolExecutor] = {}

    @staticmethod
    def count(items: int) -> int:
        """Lanes for that many items: one per item, at most one per intra-op thread."""
        return max(1, min(items, torch.get_num_threads()))

    def map(self, function: Callable[[T], R], items: Sequence[T]) -> list[R]:
        lanes = self.count(len(items))
        if lanes == 1:
            return [function(item) for item in items]
        total = torch.get_num_threads()
        if lanes not in self._pools:
            self._pools[lanes] = ThreadPoolExecutor(lanes, "faceqan-lane", initializer=_start_lane, initargs=(max(1, total // lanes),))
        try:
            return list(self._pools[lanes].map(function, items))
        finally:
            # torch.set_num_threads also sets the count every thread started later begins with:
            # a lane starting gave it its own share; give the process its count back.
            torch.set_num_threads(total)


def _start_lane(threads: int) -> None:
    """A lane thread's share of the intra-op threads, fixed for this thread: reading the count
    makes torch settle it now, so that the process-wide value given back later does not reach it."""
    torch.set_num_threads(threads)
    torch.get_num_threads()
