"""``faceqan serve``'s ASGI server: uvicorn, with a drain before it stops.

On the first SIGTERM or Ctrl-C the service reports itself draining (``/ready`` answers 503, so
a load balancer stops sending it work) and goes on serving for ``drain`` seconds; then uvicorn
stops accepting connections and gives the requests in flight its graceful-shutdown time. A
second signal stops at once (still gracefully for the requests in flight).
"""

from __future__ import annotations

import threading

import uvicorn

from .core import QualityService


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, service: QualityService, drain: float) -> None:
        super().__init__(config)
        self.service, self.drain = service, drain

    def handle_exit(self, sig, frame) -> None:
        if self.drain > 0 and not self.service.draining:
            self.service.draining = True
            timer = threading.Timer(self.drain, super().handle_exit, (sig, frame))
            timer.daemon = True
            timer.start()
            return
        super().handle_exit(sig, frame)
