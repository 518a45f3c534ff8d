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
        if lanes not in self._pools:
            threads = max(1, torch.get_num_threads() // lanes)
            self._pools[lanes] = ThreadPoolExecutor(lanes, "faceqan-lane", initializer=torch.set_num_threads, initargs=(threads,))
        return list(self._pools[lanes].map(function, items))
