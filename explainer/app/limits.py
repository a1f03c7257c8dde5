"""A CPU-time cap for one piece of work in the calling thread: past it, CpuTimeExceeded, a plain error.

The explanation runs in one thread (the pipeline pins torch to it), so that thread's CPU clock is the
request's cost whatever else the process does. A watchdog thread reads the clock and, past the cap,
raises an exception inside the worker at its next Python instruction (torch kernels are short, so this
is within a fraction of a second); it keeps raising until the work ends, in case some library code
catches everything.
"""
from __future__ import annotations

import ctypes
import threading
import time
from contextlib import contextmanager

from explainer.errors import FacexplainError

_POLL_S = 0.05


class CpuTimeExceeded(FacexplainError):
    """One request used more CPU time than the app allows."""


class _Stop(BaseException):
    """Raised asynchronously in the worker; turned into CpuTimeExceeded by cpu_limit. A BaseException, so
    the `except Exception` of library code does not swallow it."""


def _thread_clock(ident: int):
    """A function returning the CPU seconds used so far by thread `ident` (the process's where unsupported)."""
    try:
        clock = time.pthread_getcpuclockid(ident)
        time.clock_gettime(clock)
        return lambda: time.clock_gettime(clock)
    except (AttributeError, OSError):
        return time.process_time


def _raise_in(ident: int, exception: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(exception) if exception else None)


@contextmanager
def cpu_limit(seconds: float, what: str = "This analysis"):
    """Run the body with at most `seconds` of CPU time of this thread; past that, CpuTimeExceeded."""
    ident = threading.get_ident()
    clock = _thread_clock(ident)
    start = clock()
    done = threading.Event()
    fired = threading.Event()

    def watch() -> None:
        while not done.wait(_POLL_S):
            if clock() - start > seconds:
                fired.set()
                _raise_in(ident, _Stop)

    watchdog = threading.Thread(target=watch, name="cpu-limit", daemon=True)

    def stop() -> None:
        done.set()
        while True:
            try:
                watchdog.join()
                _raise_in(ident, None)  # drop an exception sent just as the body ended
                return
            except _Stop:  # it arrived while stopping: the watchdog is finished, so go round once more
                continue

    def exceeded() -> CpuTimeExceeded:
        return CpuTimeExceeded(f"{what} was stopped after {clock() - start:.1f} s of CPU time: the limit for one "
                               f"request is {seconds:g} s. The server may be overloaded or the photos unusually "
                               "hard; please try again later, or with smaller photos.")

    watchdog.start()
    try:
        yield
    except BaseException as error:
        stop()
        if fired.is_set():
            raise exceeded() from error  # whatever the body turned _Stop into
        raise
    stop()
    if fired.is_set():
        raise exceeded()
