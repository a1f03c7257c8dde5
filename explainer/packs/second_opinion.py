"""A second opinion on a recovered face: does a recognizer that recovery never used accept it as the photo?

Refinement makes the pack's own recognizer accept the recovered face by construction, so its score says
little about likeness. The second judge (another architecture, embedding and crop) says how far the face
carries the person beyond what the pack's model was optimised on. The same judges are the `judges`
block of `bench recover`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from explainer.evidence.verification import embed, prepare
from explainer.generation.crop import crop_to
from explainer.recognition.registry import load_recognizer

# Every pack's second judge: another pack's recognizer; a user's recognizer gets dlib's.
SECOND_JUDGE = {"dlib-resnet": "mobilefacenet", "mobilefacenet": "dlib-resnet", "faceplugin-r": "dlib-resnet"}
DEFAULT_SECOND_JUDGE = "dlib-resnet"


@dataclass(frozen=True)
class Opinion:
    judge: str
    score: float  # the judge's score between the recovered face and the photo
    threshold: float  # the judge's calibrated threshold
    metric: str  # "euclidean" (lower = more alike) or "cosine"
    accepts: bool


def second_judge(recognizer_name: str) -> str:
    return SECOND_JUDGE.get(recognizer_name, DEFAULT_SECOND_JUDGE)


def second_opinions(pack, recovered: dict[str, np.ndarray], photos: dict[str, object]) -> dict[str, Opinion]:
    """For each name of `recovered` (uint8 [S, S, 3] faces in the pack decoder's frame), the second judge's
    verdict against `photos[name]` (a photo: path, bytes or array, detected and aligned to its crop)."""
    judge = load_recognizer(second_judge(pack.recognizer.name))
    names = list(recovered)
    with torch.inference_mode():
        faces = torch.from_numpy(np.stack([recovered[n] for n in names])).permute(0, 3, 1, 2).float() / 255.0
        made = judge(crop_to(faces, pack.decoder.templates, judge.crop))
        originals = embed(judge, [prepare(photos[n]) for n in names])
        scores = judge.similarity(made, originals)
    return {n: Opinion(judge.name, float(s), judge.threshold.value, judge.metric.name, bool(judge.accepts(float(s))))
            for n, s in zip(names, scores)}
