"""Reading an upload: the raw body or multipart ``file`` fields, bounded per request (413) and
across requests (a ``take`` from the service's byte budget)."""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import ClientDisconnect, Request

from .core import RequestError


async def read_body(request: Request, max_bytes: int, take: Callable[[int], None]) -> bytes:
    """The body, at most ``max_bytes`` (413), its bytes taken from the budget as they are held:
    the declared length up front, so a slow upload holds its share before it arrives."""
    declared = request.headers.get("content-length")
    if declared is not None and not declared.isdigit():
        raise RequestError(400, f"malformed Content-Length {declared[:40]!r}: not a number of bytes")
    if declared is not None and int(declared) > max_bytes:
        raise RequestError(413, f"body of {declared} bytes is over the limit of {max_bytes}")
    reserved = int(declared) if declared is not None else 0
    take(reserved)
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise RequestError(413, f"body over the limit of {max_bytes} bytes")
            if size > reserved:
                take(size - reserved)
                reserved = size
            chunks.append(chunk)
    except ClientDisconnect:  # nobody to answer; not a server error
        raise RequestError(400, "the client went away before the body was complete") from None
    return b"".join(chunks)


async def read_uploads(request: Request, name: str, max_bytes: int, take: Callable[[int], None]) -> list[tuple[str, bytes]]:
    """(name, bytes) of each uploaded image: the raw body, or each multipart ``file`` field."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return [(name, await read_body(request, max_bytes, take))]
    body = await read_body(request, max_bytes, take)  # bounded first, then parsed

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    form = await Request(request.scope, receive).form(max_files=64)
    files = [(field.filename or name, await field.read()) for field in form.getlist("file") if hasattr(field, "read")]
    if not files:
        raise RequestError(400, "multipart upload without a 'file' field")
    return files
