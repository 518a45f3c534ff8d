"""Errors that become a per-item status instead of stopping a batch run."""

from __future__ import annotations


class ItemError(Exception):
    """A problem with one input; ``code`` is the short status written to the output row."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class DecodeError(ItemError):
    """The file is missing, unreadable, not an image, truncated or too large."""

    code = "decode_error"


class NoFaceError(ItemError):
    """No face passed the detector (or its size and score thresholds)."""

    code = "no_face"


class ManyFacesError(ItemError):
    """More than one face with the ``error`` face policy."""

    code = "many_faces"


class BadImageError(ItemError):
    """An aligned input of the wrong size, or with non-finite values."""

    code = "bad_image"
