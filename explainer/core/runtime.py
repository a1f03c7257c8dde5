"""How heavy work runs: on one intra-op thread where results must be bit-for-bit reproducible, and how
long jobs report their progress.

Refinement, attacks and the jobs built on them all use these, so the thread rule lives in one place
(below every subpackage: it imports torch only).
"""
from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable

import torch

Progress = Callable[[float, str], None] | None


# Jobs in one process run one at a time (re-entrant: a job's attack or refinement takes it again). Jobs
# share loaded models that are not safe to use from two threads at once (dlib's detector; the surrogate a
# transfer attack hooks feature dropout into), so the app's concurrent requests (FACEXPLAIN_CONCURRENCY > 1)
# queue here instead of mixing their state; tests/test_concurrency.py checks the bytes against a serial run.
_ONE_JOB = threading.RLock()


@contextlib.contextmanager
def single_thread():
    """One job at a time in this process, on one intra-op thread: multi-threaded reductions in the backward
    pass sum in an order that depends on timing, and refinement amplifies those last-bit differences into
    visibly different faces. The thread count is set and never restored: restoring it when one job ends
    would hand threads to whatever runs next in the process while the project's rule is one thread."""
    with _ONE_JOB:
        torch.set_num_threads(1)
        yield


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
