"""Gather work handed in by many threads into batches run by one worker thread.

A GPU scores 32 faces in about the time of one; a service whose requests each bring one face
would leave it idle. Each ``submit`` waits for its own results; the worker takes the first
waiting job, adds others that arrive within ``max_wait`` seconds until ``max_items`` items,
runs them as one batch and hands each job its slice of the results.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class Overloaded(RuntimeError):
    """More items are waiting than the batcher accepts: refuse now rather than queue without end."""


class Cancelled(RuntimeError):
    """The job's caller gave up (its client went away or its deadline passed) before it ran."""


class Stopped(RuntimeError):
    """The batcher's worker is not running (closed, or died): nothing handed in would be answered."""


class Batcher(Generic[Item, Result]):
    """Runs ``run_batch(items) -> one result per item`` over the items of concurrent jobs.
    ``max_pending``: the most items waiting or running at once (None: no bound); a job that
    would exceed it raises Overloaded at once, unless nothing is pending: a job of any size is
    admitted when the batcher is idle (it then runs alone). ``on_batch(size)`` is told each
    batch's size."""

    def __init__(
        self, run_batch: Callable[[list[Item]], Sequence[Result]], max_items: int, max_wait: float = 0.005,
        max_pending: int | None = None, on_batch: Callable[[int], None] | None = None,
    ) -> None:  # fmt: skip
        if max_items < 1:
            raise ValueError(f"max_items must be at least 1, got {max_items}")
        self.run_batch, self.max_items, self.max_wait = run_batch, max_items, max_wait
        self.max_pending, self.on_batch = max_pending, on_batch
        self.pending = 0  # items handed in and not yet answered
        self._count_lock = threading.Lock()
        self._jobs: queue.Queue[tuple[list[Item], Future, threading.Event | None] | None] = queue.Queue()
        self._closed = False
        self._worker = threading.Thread(target=self._work, daemon=True, name="faceqan-batcher")
        self._worker.start()

    @property
    def alive(self) -> bool:
        """Whether jobs handed in now will be run: not closed, and the worker thread still running."""
        return not self._closed and self._worker.is_alive()

    def submit(self, items: list[Item], cancelled: threading.Event | None = None) -> list[Result]:
        """The results for ``items``, in order, once their batch has run (its error if it failed);
        Stopped at once when the worker is closed or dead, and as soon as it dies while waiting;
        Cancelled when ``cancelled`` is set before the job's batch starts (it is then left out)."""
        if not items:
            return []
        if not self.alive:
            raise Stopped("the scoring worker is not running")
        with self._count_lock:
            if self.max_pending is not None and self.pending and self.pending + len(items) > self.max_pending:
                raise Overloaded(f"{self.pending} faces are waiting to be scored (at most {self.max_pending})")
            self.pending += len(items)
        future: Future = Future()
        try:
            self._jobs.put((items, future, cancelled))
            while True:
                try:
                    return future.result(timeout=0.5)
                except FutureTimeout:
                    if not self._worker.is_alive() and not future.done():
                        raise Stopped("the scoring worker stopped before this job ran") from None
        finally:
            with self._count_lock:
                self.pending -= len(items)

    def close(self) -> None:
        """Stop the worker after the jobs already handed in; later submits raise Stopped."""
        self._closed = True
        self._jobs.put(None)
        self._worker.join()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            if self._dropped(job):
                continue
            jobs = [job]
            count, deadline = len(job[0]), time.monotonic() + self.max_wait
            while count < self.max_items:
                try:
                    nxt = self._jobs.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if nxt is None:  # close() called: finish this batch, then stop
                    self._jobs.put(None)
                    break
                if not self._dropped(nxt):
                    jobs.append(nxt)
                    count += len(nxt[0])
            self._run([(items, future) for items, future, _ in jobs])

    @staticmethod
    def _dropped(job: tuple[list[Item], Future, threading.Event | None]) -> bool:
        """Whether the job's caller gave up already: it is answered Cancelled and not run."""
        _, future, cancelled = job
        if cancelled is not None and cancelled.is_set():
            future.set_exception(Cancelled("the caller gave up before the job ran"))
            return True
        return False

    def _run(self, jobs: list[tuple[list[Item], Future]]) -> None:
        if self.on_batch is not None:
            self.on_batch(sum(len(items) for items, _ in jobs))
        try:
            results = list(self.run_batch([item for items, _ in jobs for item in items]))
        except Exception as exc:  # noqa: BLE001 (each waiting request gets the error)
            for _, future in jobs:
                future.set_exception(exc)
            return
        start = 0
        for items, future in jobs:
            future.set_result(results[start : start + len(items)])
            start += len(items)
