"""The five losses of the paper's Eq. 11, as used to train the latent space transformer.

Perceptual: LPIPS (the paper's, `perceptual_distance("lpips")`) needs ImageNet AlexNet weights that
cannot be had offline, so the offline recipe uses an edge-structure distance instead: L1 between
Sobel gradient maps of the grey images at full and half resolution. It rewards the same facial structure (edges of eyes, brows, mouth, jaw)
independently of overall brightness, which the reconstruction term already covers.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch.nn import functional as F

from explainer.errors import FacexplainError
from explainer.generation.frame import lightness
from explainer.generation.recoverer import identity_loss

__all__ = ["LPIPSUnavailable", "batch_lightness_gap", "edge_structure_distance", "guide_loss", "identity_loss",
           "perceptual_distance", "reconstruction_loss"]

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


# -- LPIPS (the paper's perceptual term) ---------------------------------------------------------------

ALEXNET_WEIGHTS = "alexnet-owt-7be5be79.pth"  # torchvision's ImageNet AlexNet, LPIPS's backbone
LPIPS_MIN_SIDE = 64  # AlexNet's stride-4 stem and pools need about this much image


class LPIPSUnavailable(FacexplainError, FileNotFoundError):
    """LPIPS was asked for but its ImageNet AlexNet backbone is not in $TORCH_HOME."""


def alexnet_weights_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_WEIGHTS


def perceptual_distance(kind: str, fallback: str | None = None,
                        device: torch.device | str = "cpu") -> tuple[str, Callable]:
    """(the kind used, a per-sample distance fn(recovered, target) -> [B]) for images in [0, 1].

    kind: "edge" (edge_structure_distance), "lpips" (AlexNet LPIPS; its backbone must be in
    $TORCH_HOME/hub/checkpoints, it is never downloaded) or "lpips-random" (LPIPS's learned
    layers on an untrained AlexNet: runs anywhere, measures little; smoke tests only).
    fallback: what to use instead when "lpips" is asked for and the backbone is absent; without
    one that is an error.
    """
    if kind == "edge":
        return kind, edge_structure_distance
    if kind not in ("lpips", "lpips-random"):
        raise ValueError(f"unknown perceptual distance {kind!r}; expected 'edge', 'lpips' or 'lpips-random'")
    if kind == "lpips" and not alexnet_weights_path().is_file():
        if fallback is None:
            raise LPIPSUnavailable(
                f"LPIPS needs torchvision's ImageNet AlexNet weights at {alexnet_weights_path()} "
                f"(set TORCH_HOME to the folder whose hub/checkpoints holds {ALEXNET_WEIGHTS}); they are "
                f"not downloaded here. Or choose a stand-in: --perceptual_fallback edge")
        return perceptual_distance(fallback, None, device)
    import lpips

    # fork_rng + seed: the same untrained backbone every time, and the caller's random stream untouched
    with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
        warnings.simplefilter("ignore", UserWarning)  # lpips still calls torchvision's deprecated `pretrained=`
        torch.manual_seed(0)
        model = lpips.LPIPS(net="alex", pretrained=True, pnet_rand=kind == "lpips-random", verbose=False)
    model = model.to(device).eval().requires_grad_(False)

    def distance(recovered: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if recovered.shape[-1] < LPIPS_MIN_SIDE:
            recovered, target = (F.interpolate(x, size=LPIPS_MIN_SIDE, mode="bilinear", align_corners=False)
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
