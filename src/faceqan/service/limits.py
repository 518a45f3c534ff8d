"""What bounds the service's work: the limits, the bytes of bodies held across requests, and the
decode slots (each a thread decoding and detecting) that requests wait for or are refused."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ..batcher import Overloaded


@dataclass
class ServiceLimits:
    """What bounds the service's work (each enforced with its own status code)."""

    max_bytes: int = 20 * 1024 * 1024  # body size: 413 beyond (the one place this default is written)
    max_buffered_bytes: int = 256 * 1024 * 1024  # bodies held at once across requests: 503 beyond
    max_decodes: int = 4  # images decoded and detected at once (each a thread); as many more may wait, then 503
    max_explains: int = 1  # /explain attacks at once, apart from the decode slots; as many more may wait, then 503
    read_timeout: float = 30.0  # seconds to receive a body: 408 beyond
    deadline: float = 120.0  # seconds for a whole request: 504 beyond
    retry_after: int = 2  # seconds a 503 asks the client to wait


class ByteBudget:
    """The bytes of request bodies held at once, across requests (the event loop's one thread
    counts them): a request that would pass ``limit`` is refused (Overloaded) instead of buffered."""

    def __init__(self, limit: int) -> None:
        self.limit, self.held = limit, 0

    @contextmanager
    def account(self) -> Iterator[Callable[[int], None]]:
        """A ``take(n)`` for one request's bytes; everything it took is given back at the end."""
        taken = 0

        def take(count: int) -> None:
            nonlocal taken
            if self.held + count > self.limit:
                raise Overloaded(f"{self.held} bytes of uploads are held already (at most {self.limit})")
            self.held += count
            taken += count

        try:
            yield take
        finally:
            self.held -= taken


class DecodeSlots:
    """``size`` slots for decoding and detecting; as many requests more may wait for one, any
    further one is refused (Overloaded). Used from the event loop's one thread."""

    def __init__(self, size: int) -> None:
        self.size, self.waiting = size, 0
        self._free = asyncio.Semaphore(size)

    def full(self) -> bool:
        return self._free.locked() and self.waiting >= self.size

    async def take(self) -> None:
        if self.full():
            raise Overloaded(f"{self.waiting} uploads are waiting to be decoded")
        self.waiting += 1
        try:
            await self._free.acquire()
        finally:
            self.waiting -= 1

    def give_back(self) -> None:
        self._free.release()
