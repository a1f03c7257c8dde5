"""A decoder's canonical frame: where its faces sit, as a crop for real photos and as a face mask.

Real photos warped into this frame line up with the decoder's faces, so recovered and original
faces can be compared pixel by pixel (reconstruction loss, lightness bias).
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from explainer.core.geometry import CropSpec
from explainer.generation.base import Decoder


def decoder_frame(decoder: Decoder) -> CropSpec:
    """The decoder's own frame as a crop spec (its arcface5 template at its output size)."""
    return CropSpec(size=decoder.size, scheme="arcface5", template=tuple(decoder.templates["arcface5"]))


def face_mask(decoder: Decoder) -> np.ndarray:
    """bool [S, S]: an upright ellipse on the decoder's arcface5 template, covering eyes, nose, cheeks and
    mouth but not hair or background. Centre: the mean of the five points; semi-axes: 0.8 x the distance
    between the eyes across and 0.8 x the eye-to-mouth distance down (about 15 x 17 px for the DCGAN)."""
    points = np.asarray(decoder.templates["arcface5"], np.float64)
    centre = points.mean(0)
    eye_distance = np.linalg.norm(points[1] - points[0])
    eye_to_mouth = np.linalg.norm(points[3:5].mean(0) - points[0:2].mean(0))
    half_width, half_height = 0.8 * eye_distance, 0.8 * eye_to_mouth
    y, x = np.mgrid[0:decoder.size, 0:decoder.size].astype(np.float64)  # pixel centres
    return ((x - centre[0]) / half_width) ** 2 + ((y - centre[1]) / half_height) ** 2 <= 1.0


def lightness(images: torch.Tensor) -> torch.Tensor:
    """CIE L* (D65) of sRGB images [B, 3, H, W] in [0, 1], differentiable: [B, H, W] in [0, 100]."""
    linear = torch.where(images <= 0.04045, images / 12.92, ((images.clamp(min=0) + 0.055) / 1.055) ** 2.4)
    luminance = (linear * torch.tensor([0.2126, 0.7152, 0.0722], device=images.device)[:, None, None]).sum(1)
    cube = luminance.clamp(min=1e-8) ** (1 / 3)
    return torch.where(luminance > (6 / 29) ** 3, 116 * cube - 16, luminance * (29 / 3) ** 3)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Decoder images [B, 3, S, S] in [0, 1] as uint8 RGB [B, S, S, 3]."""
    return (images.detach().clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()


def enlarge(image: np.ndarray, factor: int) -> np.ndarray:
    """uint8 RGB image enlarged `factor` times, bicubic (as the decoder templates were measured)."""
    height, width = image.shape[:2]
    return cv2.resize(image, (width * factor, height * factor), interpolation=cv2.INTER_CUBIC)
