"""Explanations side by side in threads (the app with FACEXPLAIN_CONCURRENCY > 1) give the bytes a serial
run gives: nothing process-wide (torch's thread count, the recovered-face cache) is handed from one job to
another while it runs."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import torch

from explainer import assets
from explainer.jobs.explain import clear_recovery_cache, explain_pair

# Small but real: a genuine and an impostor pair of held-out people, one member, one jitter, a short rule.
PAIRS = (("s31/1.pgm", "s31/6.pgm"), ("s34/1.pgm", "s36/1.pgm"))
SMALL = {"members": 1, "jitters": 1, "refine_steps": 5}


def _report(pair) -> str:
    root = assets.path("orl")
    return explain_pair(str(root / pair[0]), str(root / pair[1]), pack="dlib-dcgan", **SMALL).to_json()


def test_two_explanations_at_once_give_the_serial_bytes():
    serial = [_report(pair) for pair in PAIRS]
    clear_recovery_cache()  # the threads recover every face themselves
    torch.set_num_threads(2)  # a process that runs other work on two threads between jobs
    with ThreadPoolExecutor(max_workers=2) as pool:
        threaded = list(pool.map(_report, PAIRS))
    assert threaded == serial
