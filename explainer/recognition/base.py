"""The Recognizer contract: the recognition model F of the paper, differentiable from pixels.

Every recognizer takes float RGB crops in [0, 1], shape [B, 3, H, W], aligned to its own canonical
frame (`crop`), and does its own normalisation inside `forward`, so attacks can work in pixel space.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

# The crop contract lives in the shared geometry module; re-exported here, where models declare it.
from explainer.core.errors import ThresholdMissing
from explainer.core.geometry import ARCFACE_112, LANDMARK_SCHEMES, CropSpec  # noqa: F401


@dataclass(frozen=True)
class Metric:
    """How two embeddings are compared: "euclidean" (a distance) or "cosine" (a similarity)."""

    name: str

    def __post_init__(self) -> None:
        if self.name not in ("euclidean", "cosine"):
            raise ValueError(f"unknown metric {self.name!r}")

    @property
    def higher_is_closer(self) -> bool:
        return self.name == "cosine"

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Row-wise score of [B, D] embeddings (broadcasting): distance or cosine similarity."""
        if self.name == "euclidean":
            return torch.linalg.vector_norm(a - b, dim=-1)
        return nn.functional.cosine_similarity(a, b, dim=-1)

    def accepts(self, score, threshold: float):
        """True where `score` says "same person" at `threshold` (works on floats, arrays, tensors)."""
        return score >= threshold if self.higher_is_closer else score <= threshold


@dataclass(frozen=True)
class Threshold:
    """A decision threshold and where it comes from."""

    value: float
    fmr: float | None  # false-match rate it was set at, on `source`; None where unknown
    source: str


class Recognizer(nn.Module):
    """Base class: subclasses set the class attributes and implement `normalise` and `embed_normalised`."""

    name: str
    embedding_dim: int
    crop: CropSpec
    metric: Metric
    upstream_threshold: Threshold | None = None

    def __init__(self) -> None:
        super().__init__()
        self._threshold: Threshold | None = None

    # -- what subclasses implement ---------------------------------------------------------------
    def normalise(self, crops: torch.Tensor) -> torch.Tensor:
        """Map [0, 1] RGB crops to the network's input (mean/std, channel order, layout)."""
        raise NotImplementedError

    def embed_normalised(self, x: torch.Tensor) -> torch.Tensor:
        """The network proper, on normalised input."""
        raise NotImplementedError

    # -- the contract ------------------------------------------------------------------------------
    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        if crops.ndim != 4 or crops.shape[1] != 3:
            raise ValueError(f"{self.name}: expected crops [B, 3, H, W], got {tuple(crops.shape)}")
        size = self.crop.size
        if crops.shape[-2:] != (size, size):
            raise ValueError(f"{self.name}: expected {size}x{size} crops, got {tuple(crops.shape[-2:])}")
        return self.embed_normalised(self.normalise(crops.float()))

    def similarity(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The metric's score between embeddings: a distance for euclidean, a cosine for cosine."""
        return self.metric(a, b)

    @property
    def threshold(self) -> Threshold:
        """The decision threshold: calibrated at FMR 1e-3 on offline real impostor pairs where known."""
        if self._threshold is not None:
            return self._threshold
        if self.upstream_threshold is not None:
            return self.upstream_threshold
        raise ThresholdMissing(f"{self.name}: no decision threshold is known; calibrate it with "
                               "`facexplain bench verify --calibrate`")

    @threshold.setter
    def threshold(self, value: Threshold) -> None:
        self._threshold = value

    def accepts(self, score):
        """The match rule: True where `score` (this recognizer's similarity) says "same person" at its
        threshold. Floats, arrays and tensors alike; every decision in facexplain goes through here."""
        return self.metric.accepts(score, self.threshold.value)

    def matches(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The match rule on two embeddings: accepts(similarity(a, b))."""
        return self.accepts(self.similarity(a, b))
