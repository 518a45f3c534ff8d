"""Each request's id: the caller's ``X-Request-ID`` when it is a plain token (a load balancer's
or a client's, so that logs line up), else a new one; sent back as ``X-Request-ID`` and used as
the ``id`` of error answers (``current_request_id``)."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

TOKEN = re.compile(r"[A-Za-z0-9._:-]{1,128}")
current_request_id: ContextVar[str | None] = ContextVar("faceqan_request_id", default=None)


class RequestIds:
    """Plain ASGI middleware (see metrics.CountRequests for why not BaseHTTPMiddleware)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if TOKEN.fullmatch(given) else uuid.uuid4().hex[:12]
        current_request_id.set(request_id)

        async def send_with_id(message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        await self.app(scope, receive, send_with_id)
