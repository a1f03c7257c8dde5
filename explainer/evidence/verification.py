"""Face verification with every recognizer: photo -> face -> aligned crop -> embedding -> decision.

Detection and landmarks run once per photo; each recognizer then gets its own canonical crop.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from explainer import faces
from explainer.recognition.base import Recognizer
from explainer.recognition.registry import RECOGNIZERS, load_recognizer


@dataclass(frozen=True)
class PreparedFace:
    """A loaded photo and the face found in it."""

    image: np.ndarray
    face: faces.DetectedFace


def prepare(source) -> PreparedFace:
    """Load a photo (path, bytes, PIL image or array) and find its face; raises on bad input."""
    image = faces.load_image(source)
    return PreparedFace(image, faces.find_face(image))


def aligned_batch(recognizer: Recognizer, prepared: Sequence[PreparedFace]) -> torch.Tensor:
    """The recognizer's canonical crops of the prepared faces, float [B, 3, S, S] in [0, 1]."""
    crops = [faces.align(p.image, p.face.landmarks, recognizer.crop) for p in prepared]
    return faces.to_tensor(np.stack(crops))


@torch.inference_mode()
def embed(recognizer: Recognizer, prepared: Sequence[PreparedFace], batch_size: int = 32) -> torch.Tensor:
    chunks = [recognizer(aligned_batch(recognizer, prepared[k:k + batch_size]))
              for k in range(0, len(prepared), batch_size)]
    return torch.cat(chunks) if chunks else torch.empty(0, recognizer.embedding_dim)


@dataclass(frozen=True)
class VerificationResult:
    model: str
    metric: str
    score: float  # distance for euclidean, cosine similarity for cosine
    threshold: float
    threshold_source: str
    threshold_fmr: float | None
    match: bool
    notes: tuple[str, ...] = field(default_factory=tuple)
    log10_lr: float | None = None  # calibrated likelihood ratio (explainer.evidence); None: not calibrated
    verbal: str | None = None  # its ENFSI verbal equivalent
    warnings: tuple[str, ...] = field(default_factory=tuple)  # pair outside the calibration conditions, ...


def verify_pair(probe, reference, models: Sequence[str] | None = None) -> list[VerificationResult]:
    """Compare two photos with each named recognizer (all by default)."""
    from explainer.evidence import decision_evidence, quality_flags

    pair = [prepare(probe), prepare(reference)]
    quality = {role: quality_flags(p.image, p.face, source)
               for role, p, source in zip(("probe", "reference"), pair, (probe, reference))}
    notes = tuple(f"{role}: {p.face.note}" for role, p in zip(("probe", "reference"), pair) if p.face.note)
    results = []
    for name in models or list(RECOGNIZERS):
        model = load_recognizer(name)
        a, b = embed(model, pair)
        score = float(model.similarity(a, b))
        threshold = model.threshold
        results.append(VerificationResult(
            model=name, metric=model.metric.name, score=score, threshold=threshold.value,
            threshold_source=threshold.source, threshold_fmr=threshold.fmr,
            match=bool(model.accepts(score)), notes=notes,
            **_evidence(decision_evidence(name, score, quality))))
    return results


def _evidence(evidence: dict) -> dict:
    return {"log10_lr": evidence["log10_lr"], "verbal": evidence["verbal"], "warnings": tuple(evidence["warnings"])}


def example_pairs() -> list[tuple[str, str, str]]:
    """A genuine and an impostor pair of held-out ORL people, for the demo."""
    from explainer import assets

    root = assets.path("orl")
    return [(str(root / "s31" / "1.pgm"), str(root / "s31" / "6.pgm"), "genuine (ORL s31)"),
            (str(root / "s31" / "1.pgm"), str(root / "s32" / "1.pgm"), "impostor (ORL s31 vs s32)")]
