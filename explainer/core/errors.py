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


class MismatchError(FacexplainError, ValueError):
    """Parts that must fit together do not: a transformer and the decoder or recognizer of its pack, a
    recognizer file and the crop it was declared with, a surrogate that is the target itself. The message
    names both parts and what to use instead. (A ValueError too, for callers that catch that.)"""


class InvalidSetting(FacexplainError, ValueError):
    """A name or value given by the user is not one facexplain accepts; the message says what is."""


class ThresholdMissing(FacexplainError, RuntimeError):
    """A recognizer has no decision threshold: it was never calibrated."""
