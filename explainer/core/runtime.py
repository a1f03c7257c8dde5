"""How heavy work runs: on one intra-op thread where results must be bit-for-bit reproducible, and how
long jobs report their progress.

Refinement, attacks and the jobs built on them all use these, so the thread rule lives in one place
(below every subpackage: it imports torch only).
"""
from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable

import torch

Progress = Callable[[float, str], None] | None


@contextlib.contextmanager
def single_thread():
    """One intra-op thread: multi-threaded reductions in the backward pass sum in an order that depends
    on timing, and refinement amplifies those last-bit differences into visibly different faces."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def single_threaded(function):
    """Run `function` on one intra-op thread: sign steps amplify the last-bit differences of
    multi-threaded reductions, and a forensic result must be reproducible (as refinement does)."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with single_thread():
            return function(*args, **kwargs)
    return wrapper


def report_progress(progress: Progress, fraction: float, stage: str) -> None:
    """Tell `progress` (a callable(fraction, stage), or None) how far a job is."""
    if progress is not None:
        progress(float(fraction), stage)
