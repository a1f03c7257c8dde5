"""The explain tab's progress bar: which stage runs now, and how long the rest should take.

The pipeline reports each stage as it finishes (explainer.jobs.explain: faces_and_decision,
counterfactual, recovery, attributes, significance); the handler adds writing the reports. The time left is
the sum of the remaining stages' typical durations, learned from this app's own finished explanations
with the same pack and attack (a moving average): no estimate is shown before one has finished, rather
than a guess from another machine.
"""
from __future__ import annotations

import threading
import time

# The pipeline's stages in order, each with what the progress bar calls it (significance, a fraction of
# a second of bootstrap, is shown as part of the attributes).
STAGES = {"faces_and_decision": "finding faces", "counterfactual": "counterfactuals", "recovery": "recovery",
          "attributes": "attributes", "significance": "attributes", "reports": "reports"}
ORDER = tuple(STAGES)
SHOWN = tuple(dict.fromkeys(STAGES.values()))  # the five stages a user sees
SMOOTHING = 0.3  # weight of the newest run in the moving average


def _left_words(seconds: float) -> str:
    if seconds < 1.5:
        return "about a second left"
    if seconds < 90:
        return f"about {round(seconds)} s left"
    return f"about {round(seconds / 60)} min left"


class StageTimes:
    """Typical seconds per stage for each (pack, attack), from the explanations this app has finished."""

    def __init__(self) -> None:
        self._typical: dict[tuple[str, str], dict[str, float]] = {}
        self._lock = threading.Lock()  # requests finish concurrently

    def typical(self, key: tuple[str, str]) -> dict[str, float] | None:
        with self._lock:
            found = self._typical.get(key)
            return None if found is None else dict(found)

    def record(self, key: tuple[str, str], seconds: dict[str, float]) -> None:
        """Fold one finished explanation's stage timings (explanation.seconds plus "reports") in."""
        with self._lock:
            old = self._typical.get(key)
            if old is None:
                self._typical[key] = {stage: float(seconds.get(stage, 0.0)) for stage in ORDER}
            else:
                self._typical[key] = {stage: (1 - SMOOTHING) * old[stage] + SMOOTHING * float(seconds.get(stage, 0.0))
                                      for stage in ORDER}

    def describe(self, key: tuple[str, str], finished: str | None) -> tuple[float | None, str]:
        """(fraction done by typical time, or None without a typical run; the bar's text) once `finished`
        (None: nothing yet) is over: "Stage 2 of 5: counterfactuals, about 6 s left"."""
        upcoming = ORDER[ORDER.index(finished) + 1:] if finished is not None else ORDER
        running = STAGES[upcoming[0]] if upcoming else STAGES[ORDER[-1]]
        text = f"Stage {SHOWN.index(running) + 1} of {len(SHOWN)}: {running}"
        typical = self.typical(key)
        if typical is None:
            return None, text + " (time left known after a first run)"
        total, left = sum(typical.values()), sum(typical[stage] for stage in upcoming)
        return (1 - left / total if total > 0 else None), f"{text}, {_left_words(left)}"


class StageReporter:
    """The pipeline's progress(fraction, stage) as Gradio progress with stage names and time left; the
    handler calls `reports()` before writing the reports and `seconds()` for what this run took."""

    def __init__(self, progress, times: StageTimes, key: tuple[str, str]) -> None:
        self.progress, self.times, self.key = progress, times, key
        self._show(None, 0.0)

    def _show(self, finished: str | None, pipeline_fraction: float) -> None:
        fraction, text = self.times.describe(self.key, finished)
        # Without a typical run, the pipeline's own rough fractions move the bar.
        self.progress(pipeline_fraction * 0.95 if fraction is None else fraction, desc=text)

    def __call__(self, fraction: float, stage: str) -> None:
        self._show(stage if stage in STAGES else None, float(fraction))

    def reports(self) -> float:
        """Announce the reports stage; returns its start time for `finish`."""
        self._show("significance", 1.0)
        return time.perf_counter()

    def finish(self, seconds: dict[str, float], reports_started: float) -> None:
        """Record this run's stage timings, reports included."""
        self.times.record(self.key, {**seconds, "reports": time.perf_counter() - reports_started})
