"""Training configurations as plain dataclasses; `--key value` on the command line overrides fields."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass(frozen=True)
class LossWeights:
    """The five terms of the paper's Eq. 11 (default weights 0.1 / 0.8 / 8 / 0.1 / 0.02)."""

    reconstruction: float = 0.1  # L1 between the recovered face and the photo, in the decoder's frame
    perceptual: float = 0.8  # LPIPS where its backbone exists; offline, an edge-structure distance
    identity: float = 8.0  # F's distance (or 1 - cosine) between F(recovered) and the target embedding
    guide: float = 0.1  # squared error to the exact latent, for decoder samples (their latent is known)
    regularisation: float = 0.02  # keeps latents where the decoder's prior puts its faces
    # Not in Eq. 11, ours: (batch mean of face L* recovered - original)^2 / 100 on real photos. Without
    # it recovered faces came out ~20 L* darker; per-face matching cost identity, the batch mean did not.
    lightness: float = 1.0


@dataclass(frozen=True)
class TransformerTrainConfig:
    name: str
    recognizer: str  # registry name of F
    decoder: str  # decoder name (explainer.packs.load_decoder)
    steps: int  # optimiser steps
    batch_real: int  # real training faces per step
    batch_synthetic: int  # decoder samples per step
    synthetic_bank: int  # decoder samples (with their F-embeddings) drawn once before training
    lr: float = 1e-3
    weights: LossWeights = field(default_factory=LossWeights)
    residual_scale: float = 1.0  # TransformerConfig.residual_scale
    tanh: bool = False  # TransformerConfig.tanh
    max_real_faces: int | None = None  # cap on the real training photos (None: all)
    seed: int = 0
    log_every: int = 25

    def override(self, **changes) -> TransformerTrainConfig:
        weights = {k[len("weights."):]: v for k, v in changes.items() if k.startswith("weights.")}
        plain = {k: v for k, v in changes.items() if not k.startswith("weights.")}
        if weights:
            plain["weights"] = dataclasses.replace(self.weights, **weights)
        return dataclasses.replace(self, **plain)


# Settings from 6-minute trials on held-out faces (tanh-bounded residuals at scale 1 beat scale 3 and
# no tanh; 12 real + 8 synthetic per step).
_OFFLINE = dict(decoder="dcgan-digiface", steps=2000, batch_real=12, batch_synthetic=8, synthetic_bank=4096,
                lr=1e-3, residual_scale=1.0, tanh=True)

CONFIGS: dict[str, TransformerTrainConfig] = {c.name: c for c in [
    # Seconds on a CPU: exercises every code path (tests).
    TransformerTrainConfig("cpu-tiny", "dlib-resnet", "dcgan-digiface", steps=2, batch_real=4, batch_synthetic=4,
                           synthetic_bank=16, max_real_faces=12, log_every=1),
    TransformerTrainConfig("offline-dlib", "dlib-resnet", **_OFFLINE),
    TransformerTrainConfig("offline-mobilefacenet", "mobilefacenet", **_OFFLINE),
]}


def get_config(name: str) -> TransformerTrainConfig:
    try:
        return CONFIGS[name]
    except KeyError:
        raise KeyError(f"unknown config {name!r}; known: {', '.join(CONFIGS)}") from None
