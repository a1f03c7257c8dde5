"""A CPU-time cap for one piece of work in the calling thread: past it, CpuTimeExceeded, a plain error.

The explanation runs in one thread (the pipeline pins torch to it), so that thread's CPU clock is the
request's cost whatever else the process does. Two stops:
- cooperative: `check()`, called at each progress report of the pipeline (between its stages), raises
  past the cap. Safe, and what normally ends an over-long request;
- forced, only past HARD_FACTOR x the cap (one stage running away on its own): a watchdog thread raises
  an exception inside the worker at its next Python instruction, and again until the work ends. Such an
  exception can land anywhere (a `finally`, a `__del__`), so it is the last resort, not the rule.
"""
from __future__ import annotations

import ctypes
import threading
import time
from contextlib import contextmanager

from explainer.core.errors import FacexplainError

_POLL_S = 0.05
HARD_FACTOR = 2.0


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
    """Run the body with at most `seconds` of CPU time of this thread; past that, CpuTimeExceeded.
    Yields `check`, to call wherever stopping is safe (it raises CpuTimeExceeded past the cap)."""
    ident = threading.get_ident()
    clock = _thread_clock(ident)
    start = clock()
    done = threading.Event()
    fired = threading.Event()

    def watch() -> None:
        while not done.wait(_POLL_S):
            if clock() - start > HARD_FACTOR * seconds:
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

    def check() -> None:
        if clock() - start > seconds:
            fired.set()
            raise exceeded()

    watchdog.start()
    try:
        yield check
    except CpuTimeExceeded:
        stop()
        raise
    except BaseException as error:
        stop()
        if fired.is_set():
            raise exceeded() from error  # whatever the body turned _Stop into
        raise
    stop()
    if fired.is_set():
        raise exceeded()


def checked(progress, check):
    """The pipeline's progress(fraction, stage) callback, calling `check` first: a cap checked per stage."""
    def report(fraction: float, stage: str) -> None:
        check()
        progress(fraction, stage)
    return report
