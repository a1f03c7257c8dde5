"""Run-time helpers every stage shares: one intra-op thread for reproducible results, and progress reports."""
from __future__ import annotations

import contextlib
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


def report_progress(progress: Progress, fraction: float, stage: str) -> None:
    """Tell `progress` (a callable(fraction, stage), or None) how far a job is."""
    if progress is not None:
        progress(float(fraction), stage)
