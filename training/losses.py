"""The five losses of the paper's Eq. 11, as used to train the latent space transformer.

Perceptual: LPIPS (the paper's, `perceptual_distance("lpips")`), its ImageNet AlexNet taken from the
`lpips-alexnet` asset (explainer.generation.perceptual). The edge-structure distance, the stand-in of
the first offline recipe, stays as a fallback: L1 between Sobel gradient maps of the grey images at full
and half resolution. It rewards the same facial structure (edges of eyes, brows, mouth, jaw)
independently of overall brightness, which the reconstruction term already covers.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch.nn import functional as F

from explainer.core.errors import FacexplainError
from explainer.generation.frame import lightness
from explainer.generation.perceptual import MIN_SIDE
from explainer.generation.recoverer import identity_loss

__all__ = ["LPIPSUnavailable", "batch_lightness_gap", "edge_structure_distance", "guide_loss", "identity_loss",
           "latent_realism", "perceptual_distance", "reconstruction_loss"]

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


def latent_realism(latents: torch.Tensor, prior_mean: torch.Tensor, prior_std: torch.Tensor) -> torch.Tensor:
    """How far a batch of latents [B, n_codes, code_dim] is from the decoder's prior, per dimension: the
    mean over dimensions of (batch mean - prior mean)^2 + (batch std - prior std)^2, in prior std units;
    a one-element tensor. T's latents collapse toward a few directions (small spread, off-centre), which
    decode to blurred, averaged faces; prior samples score about 1 / B (sampling noise)."""
    if len(latents) < 2:
        raise ValueError("latent_realism needs a batch of at least 2 latents")
    z = (latents - prior_mean) / prior_std
    return (z.mean(0).pow(2).mean() + (z.std(0) - 1).pow(2).mean())[None]


def batch_lightness_gap(recovered: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(mean face L* of the recovered batch - that of the targets)^2 / 100, a scalar; `mask` [H, W] bool."""
    gap = lightness(recovered)[:, mask].mean() - lightness(target)[:, mask].mean()
    return gap.pow(2) / 100


# -- LPIPS (the paper's perceptual term) ---------------------------------------------------------------


class LPIPSUnavailable(FacexplainError, FileNotFoundError):
    """LPIPS was asked for but its ImageNet backbone (asset `lpips-alexnet`) has not been fetched."""


def perceptual_distance(kind: str, fallback: str | None = None,
                        device: torch.device | str = "cpu") -> tuple[str, Callable]:
    """(the kind used, a per-sample distance fn(recovered, target) -> [B]) for images in [0, 1].

    kind: "edge" (edge_structure_distance), "lpips" (LPIPS v0.1 on the ImageNet AlexNet of the asset
    `lpips-alexnet`, explainer.generation.perceptual) or "lpips-random" (LPIPS's learned heads on an
    untrained AlexNet: runs anywhere, measures little; smoke tests only).
    fallback: what to use instead when "lpips" is asked for and the asset is absent; without one
    that is an error.
    """
    if kind == "edge":
        return kind, edge_structure_distance
    if kind not in ("lpips", "lpips-random"):
        raise ValueError(f"unknown perceptual distance {kind!r}; expected 'edge', 'lpips' or 'lpips-random'")
    if kind == "lpips":
        from explainer import assets
        from explainer.generation.perceptual import NETS, load_lpips, lpips_distance

        if not assets.is_present(NETS["alex"][0]):
            if fallback is None:
                raise LPIPSUnavailable(
                    f"LPIPS needs the asset {NETS['alex'][0]} (ImageNet AlexNet + LPIPS heads): "
                    f"`facexplain assets fetch --only {NETS['alex'][0]}`, or choose a stand-in: --perceptual_fallback edge")
            return perceptual_distance(fallback, None, device)
        load_lpips("alex").to(device)
        return kind, lpips_distance
    import lpips

    # fork_rng + seed: the same untrained backbone every time, and the caller's random stream untouched
    with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
        warnings.simplefilter("ignore", UserWarning)  # lpips still calls torchvision's deprecated `pretrained=`
        torch.manual_seed(0)
        model = lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False)
    model = model.to(device).eval().requires_grad_(False)

    def distance(recovered: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if recovered.shape[-1] < MIN_SIDE:
            recovered, target = (F.interpolate(x, size=MIN_SIDE, mode="bilinear", align_corners=False)
                                 for x in (recovered, target))
        return model(recovered, target, normalize=True).flatten()  # normalize: [0, 1] -> [-1, 1]

    return kind, distance


class LandmarkDistance(torch.nn.Module):
    """Differentiable distance between the 68 landmarks of two batches of decoder-frame faces [B, 3, S, S].

    faceplugin's landmark network (converted with onnx2torch) reads the whole decoder frame as its 64x64
    grey square (the frame spans crown to chin, ear to ear, as the network's face squares do); points come
    in fractions of the square. The distance is the mean point distance in units of the mean inter-ocular
    distance of the photos' points, per sample [B].
    """

    def __init__(self) -> None:
        super().__init__()
        from onnx2torch import convert

        from explainer import assets

        self.net = convert(str(assets.path("faceplugin-landmark"))).eval().requires_grad_(False)

    def points(self, images: torch.Tensor) -> torch.Tensor:
        grey = (0.299 * images[:, 0] + 0.587 * images[:, 1] + 0.114 * images[:, 2])[:, None]
        grey = torch.nn.functional.interpolate(grey, size=(64, 64), mode="bilinear", align_corners=False,
                                               antialias=True) if grey.shape[-1] != 64 else grey
        return self.net(grey * (255.0 / 256.0)).reshape(len(images), 68, 2)  # fr_landmark.js: grey / 256

    def forward(self, recovered: torch.Tensor, photos: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = self.points(photos)
            eyes = (target[:, 36:42].mean(1) - target[:, 42:48].mean(1)).norm(dim=1).mean()
        return (self.points(recovered) - target).norm(dim=2).mean(1) / eyes
