"""Canonical JSON: the same result always serialises to the same bytes.

Keys sorted, fixed indentation, floats rounded to 10 significant digits (far below any measurement
error here, and it hides last-bit noise a different BLAS could add), NumPy scalars and arrays made
plain, and non-finite floats refused: callers flag them explicitly instead (JSON has no inf).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

SIGNIFICANT_DIGITS = 10


def plain(value):
    """`value` with NumPy types, tuples and Paths made plain JSON types, floats rounded."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"non-finite number {value} in a report; flag it and store null instead")
        return float(f"{value:.{SIGNIFICANT_DIGITS}g}")
    if isinstance(value, Path):
        return value.name
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"cannot put {type(value).__name__} into a JSON report")


def dumps(payload: dict) -> str:
    return json.dumps(plain(payload), indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"
