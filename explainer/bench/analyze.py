"""`facexplain bench analyze`: `analyze` end to end (faces, attributes of photos and recoveries, MI), in
photos per second, on the first N held-out ORL photos (default 40).

Runs under torchrun too (`torchrun --nproc_per_node=2 -m explainer.cli bench analyze`): the photos are
shared out as `analyze` shares them, and rank 0 reports. The load average is recorded, since the figure
means little on a machine that others are using.
"""
from __future__ import annotations

import os
import time

from explainer.assets import datasets
from explainer.jobs import shards
from explainer.jobs.analysis import CHUNK, analyze_model


def run(pack: str = "dlib-dcgan", images: int = 40, chunk: int = CHUNK) -> dict | None:
    photos = [s.path for s in datasets.orl(datasets.ORL_TEST)][:images]
    analyze_model(pack, data=photos[:12], n_boot=10, chunk=chunk)  # warm-up: networks and model files load once
    start = time.perf_counter()
    report = analyze_model(pack, data=photos, chunk=chunk)
    seconds = time.perf_counter() - start
    if report is None:  # a torchrun rank other than 0
        return None
    result = {"pack": pack, "images": len(photos), "faces": report.n_faces, "chunk": chunk, "seconds": seconds,
              "images_per_second": len(photos) / seconds, "processes": shards.world_size(),
              "cpu_count": os.cpu_count(), "load_average": list(os.getloadavg())}
    print(f"analyze {pack}: {result['images_per_second']:.2f} photos/s ({len(photos)} ORL photos, "
          f"{result['processes']} process(es), {seconds:.1f} s; load average {result['load_average'][0]:.1f})")
    return result
