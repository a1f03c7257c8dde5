"""The five losses of the paper's Eq. 11, as used to train the latent space transformer.

Perceptual: LPIPS needs ImageNet backbone weights that cannot be had offline, so the offline recipe
uses an edge-structure distance instead: L1 between Sobel gradient maps of the grey images at full
and half resolution. It rewards the same facial structure (edges of eyes, brows, mouth, jaw)
independently of overall brightness, which the reconstruction term already covers.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

from explainer.generation.frame import lightness
from explainer.generation.recoverer import identity_loss

__all__ = ["batch_lightness_gap", "edge_structure_distance", "guide_loss", "identity_loss", "reconstruction_loss"]

_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8.0
_SOBEL = torch.stack([_SOBEL_X, _SOBEL_X.T])[:, None]  # [2, 1, 3, 3]: d/dx and d/dy


def reconstruction_loss(recovered: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample mean absolute pixel difference [B]."""
    return (recovered - target).abs().mean(dim=(1, 2, 3))


def _edges(images: torch.Tensor) -> torch.Tensor:
    grey = (images * torch.tensor([0.299, 0.587, 0.114], device=images.device)[:, None, None]).sum(1, keepdim=True)
    return F.conv2d(grey, _SOBEL.to(images), padding=1)


def edge_structure_distance(recovered: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample [B] L1 distance of Sobel gradients at full and half resolution."""
    full = (_edges(recovered) - _edges(target)).abs().mean(dim=(1, 2, 3))
    half = (_edges(F.avg_pool2d(recovered, 2)) - _edges(F.avg_pool2d(target, 2))).abs().mean(dim=(1, 2, 3))
    return full + half


def guide_loss(latents: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
    """Per-sample mean squared error [B] to the exact latent (known for decoder samples)."""
    return (latents - exact).pow(2).mean(dim=(1, 2))


def batch_lightness_gap(recovered: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(mean face L* of the recovered batch - that of the targets)^2 / 100, a scalar; `mask` [H, W] bool."""
    gap = lightness(recovered)[:, mask].mean() - lightness(target)[:, mask].mean()
    return gap.pow(2) / 100
