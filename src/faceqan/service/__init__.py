"""``faceqan serve``: the scoring core (``core.QualityService``) and its HTTP app (``app.create_app``)."""

from .core import QualityService, RequestError

__all__ = ["QualityService", "RequestError"]
