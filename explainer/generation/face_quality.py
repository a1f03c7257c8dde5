"""Image-quality figures of recovered faces for `bench recover`: how far from the photo a face looks
(LPIPS) and how sharp it is next to the decoder's own samples (variance of the Laplacian)."""
from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from explainer.generation.perceptual import lpips_distance

_LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])[None, None]


def laplacian_variance(images: torch.Tensor) -> torch.Tensor:
    """Per-image [N] variance of the 4-neighbour Laplacian of the grey image (RGB [N, 3, S, S] in [0, 1],
    grey on the 0..255 scale, the interior only: no padding edge)."""
    grey = (images.clamp(0, 1) * torch.tensor([0.299, 0.587, 0.114])[:, None, None]).sum(1, keepdim=True) * 255
    return F.conv2d(grey.double(), _LAPLACIAN.double()).flatten(1).var(dim=1)


def sharpness_ratio(images: torch.Tensor, samples: torch.Tensor) -> float:
    """Mean Laplacian variance of `images` over that of decoder `samples` of the same size (1: as sharp)."""
    if images.shape[-2:] != samples.shape[-2:]:
        raise ValueError(f"sharpness is compared at one size; got {tuple(images.shape[-2:])} and {tuple(samples.shape[-2:])}")
    return float(laplacian_variance(images).mean() / laplacian_variance(samples).mean())


@torch.inference_mode()
def mean_lpips(images: torch.Tensor, photos: np.ndarray, batch_size: int = 64) -> float:
    """Mean LPIPS-Alex between faces [N, 3, S, S] in [0, 1] and the photos in the same frame, uint8 [N, S, S, 3]."""
    if len(images) != len(photos):
        raise ValueError(f"{len(images)} faces for {len(photos)} photos")
    targets = torch.from_numpy(np.ascontiguousarray(photos)).permute(0, 3, 1, 2).float() / 255.0
    values = [lpips_distance(images[k:k + batch_size].float().clamp(0, 1), targets[k:k + batch_size])
              for k in range(0, len(images), batch_size)]
    return float(torch.cat(values).mean())
