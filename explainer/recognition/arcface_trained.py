"""What the ArcFace-trained PyTorch backbones users bring have in common (IR-SE, iresnet, MobileFaceNet).

All of them (TreB1eN/InsightFace_Pytorch, insightface arcface_torch, the paper's face_utils/arcface.py)
take 112x112 RGB crops aligned to the ArcFace five-point template, scaled to [-1, 1]
((p / 255 - 0.5) / 0.5), and are compared by cosine similarity.

Threshold: these recognizers run on the user's own weights, which we have never seen, so nothing is
calibrated. `UNCALIBRATED_ARCFACE` is an upstream-typical value, labelled as such: TreB1eN's face-bank
threshold (config.threshold = 1.5 on the squared L2 distance of unit embeddings, i.e. cosine 0.25).
insightface ships no verification threshold. Calibrate on your own impostor pairs before trusting a
decision (`explainer.recognition.calibration.threshold_at_fmr`, then `recognizer.threshold = ...`).
"""
from __future__ import annotations

import torch
from torch import nn

from explainer.recognition.base import ARCFACE_112, Metric, Recognizer, Threshold

EMBEDDING_DIM = 512
UNCALIBRATED_ARCFACE = Threshold(
    value=0.25, fmr=None,
    source="UNCALIBRATED upstream-typical cosine 0.25 (TreB1eN/InsightFace_Pytorch config.threshold = 1.5, "
           "squared L2 of unit embeddings); not measured for these weights: calibrate before relying on it")


class ArcFaceTrainedRecognizer(Recognizer):
    """Base: ArcFace 112 crop, [-1, 1] RGB input, cosine metric, an uncalibrated upstream-typical threshold.

    Subclasses build the network and implement `embed_normalised`. `l2_normalise` says whether the
    upstream forward returns unit vectors (TreB1eN and the paper's code do; insightface does not);
    cosine similarity is the same either way.
    """

    crop = ARCFACE_112
    metric = Metric("cosine")
    upstream_threshold = UNCALIBRATED_ARCFACE

    def __init__(self, name: str, embedding_dim: int = EMBEDDING_DIM, l2_normalise: bool = False) -> None:
        super().__init__()
        self.name = name
        self.embedding_dim = embedding_dim
        self.l2_normalise = l2_normalise

    def normalise(self, crops: torch.Tensor) -> torch.Tensor:
        return (crops - 0.5) / 0.5

    def finish(self, embeddings: torch.Tensor) -> torch.Tensor:
        """The upstream output convention, with a shape check."""
        assert embeddings.ndim == 2 and embeddings.shape[1] == self.embedding_dim, embeddings.shape
        return nn.functional.normalize(embeddings, dim=1) if self.l2_normalise else embeddings
