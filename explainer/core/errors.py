"""Errors an investigator may see. Messages say, in plain words, what is wrong and what to do next."""
from __future__ import annotations


class FacexplainError(Exception):
    """Base class of every error facexplain raises on purpose (as opposed to a bug)."""


class ImageError(FacexplainError):
    """The input could not be used as a picture: unreadable, corrupt, unsupported or too large."""


class NoFaceError(FacexplainError):
    """No face was found in the picture."""


class FaceTooSmallError(FacexplainError):
    """A face was found, but it is too small for a trustworthy comparison."""

    def __init__(self, message: str, *, face_px: float, min_face_px: float) -> None:
        super().__init__(message)
        self.face_px = face_px
        self.min_face_px = min_face_px
