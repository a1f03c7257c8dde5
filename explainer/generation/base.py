"""The Decoder contract: the face generator G that renders a latent as a face.

A decoder maps latents [B, n_codes, code_dim] to RGB images [B, 3, S, S] in [0, 1], deterministically
(no random noise at inference), and knows where faces sit in its canonical frame (five-point
templates), so recognizers and estimators can crop recovered faces without running a detector.
"""
from __future__ import annotations

import torch
from torch import nn


class Decoder(nn.Module):
    """Base class. Subclasses set the class attributes, register `mean_latent`, implement `synthesise`."""

    name: str
    latent_shape: tuple[int, int]  # (n_codes, code_dim)
    size: int  # output side in pixels
    # Five-point templates of the canonical frame, in output pixels, per landmark scheme
    # ("arcface5", "dlib5"; see explainer.core.geometry).
    templates: dict[str, tuple[tuple[float, float], ...]]
    mean_latent: torch.Tensor  # [n_codes, code_dim] buffer: the centre the transformer's residual starts from

    def synthesise(self, latent: torch.Tensor) -> torch.Tensor:
        """The generator proper on [B, n_codes, code_dim] latents; returns RGB in [0, 1]."""
        raise NotImplementedError

    def sample_latents(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """`n` latents from the decoder's prior, [n, n_codes, code_dim]."""
        raise NotImplementedError

    def prior_penalty(self, latent: torch.Tensor) -> torch.Tensor:
        """Per-sample [B] penalty for leaving the region where the decoder makes plausible faces, used
        when refining latents. Default: mean squared distance from the mean latent."""
        return (latent - self.mean_latent).pow(2).mean(dim=(1, 2))

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        if latent.ndim != 3 or tuple(latent.shape[1:]) != tuple(self.latent_shape):
            raise ValueError(f"{self.name}: expected latents [B, {self.latent_shape[0]}, {self.latent_shape[1]}], "
                             f"got {tuple(latent.shape)}")
        images = self.synthesise(latent)
        assert images.shape[1:] == (3, self.size, self.size), images.shape
        return images
