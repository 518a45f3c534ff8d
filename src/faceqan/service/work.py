"""A request's work in a worker thread, holding a decode slot until the thread ends and told to
stop when its request is given up (deadline) or its client goes away."""

from __future__ import annotations

import asyncio
import threading

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from .limits import DecodeSlots


async def in_decode_slot(request: Request, slots: DecodeSlots, function, *args):
    """``function(*args, cancelled)`` in a worker thread, holding one of ``slots`` until the thread
    ends (not just until this request is answered). When the request is given up (its deadline:
    this coroutine is cancelled) or its client goes away, ``cancelled`` is set, so the work stops
    at its next boundary (decoded, or its batch's start)."""
    await slots.take()
    cancelled = threading.Event()
    work = asyncio.ensure_future(run_in_threadpool(function, *args, cancelled))
    # The slot comes back when the thread ends; an outcome nobody awaits any more is read here.
    work.add_done_callback(lambda done: (slots.give_back(), done.cancelled() or done.exception()))

    async def watch_the_client() -> None:
        while not work.done():
            if await request.is_disconnected():
                cancelled.set()
                return
            await asyncio.sleep(0.1)

    watcher = asyncio.ensure_future(watch_the_client())
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        cancelled.set()  # the answer (504) goes now; the slot comes back when the thread ends
        raise
    finally:
        watcher.cancel()
