"""Case numbers: a short label an investigator attaches to an analysis, written into its reports and audit line.

A case number is only ever data (JSON, HTML-escaped text, PDF text): never a file or folder name. It is
still kept to a plain character set, so it reads the same in every report and cannot smuggle markup,
control characters or path separators into a system that might use it carelessly later.
"""
from __future__ import annotations

import re

from explainer.core.errors import FacexplainError

MAX_LENGTH = 64
# Letters, digits, space and - _ . : # ; starting with a letter or digit. No / or \ (use -).
_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._:#-]*")


class InvalidCase(FacexplainError):
    """The case number has characters or a length facexplain does not accept."""


def case_number(text: str | None) -> str | None:
    """The case number `text` stripped of surrounding spaces; None when empty. InvalidCase, with what to
    change, when it is too long or has other characters than letters, digits, space and - _ . : #."""
    if text is None:
        return None
    if not isinstance(text, str):
        raise InvalidCase(f"A case number is text, not {type(text).__name__}.")
    case = text.strip()
    if not case:
        return None
    if len(case) > MAX_LENGTH:
        raise InvalidCase(f"The case number is {len(case)} characters long; at most {MAX_LENGTH} are allowed.")
    if not _PATTERN.fullmatch(case) or ".." in case:
        raise InvalidCase("A case number may hold letters, digits, spaces and - _ . : # only, starting with a letter "
                          "or digit, without '..' (write 2026-0117 rather than 2026/0117).")
    return case
