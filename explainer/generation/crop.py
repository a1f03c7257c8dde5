"""Differentiable crops of decoder faces into a recognizer's canonical frame.

A decoder knows where its faces sit (`Decoder.templates`), so no detector is needed: the similarity
transform taking the decoder's five points (in the crop's scheme) onto the crop's template is fixed,
and the warp is a torch grid_sample through which gradients reach the decoder's pixels (and latents).

Coordinates are pixel centres, as in explainer.faces.align (pixel row r, column c is the point x=c,
y=r). grid_sample runs with align_corners=False, whose normalised coordinate -1 / +1 is the outer
*edge* of the first / last pixel, so pixel centre x maps to (2x + 1) / W - 1: the same convention as
cv2.warpAffine, which is what makes the two agree (tests/test_dcgan.py checks it).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from explainer.core.geometry import CropSpec, similarity_transform

Points = Sequence[Sequence[float]]


def crop_matrix(decoder_template: Mapping[str, Points], crop: CropSpec) -> np.ndarray:
    """2x3 matrix taking decoder-frame pixel centres to `crop` pixel centres.

    Both crop methods are a least-squares similarity over the five points of crop.scheme: "dlib_chip"
    too, since dlib's get_face_chip fits exactly that to its mean face (crop.template holds where
    get_face_chip puts the mean-face points, see geometry.dlib_chip_template).
    """
    if crop.method not in ("similarity", "dlib_chip"):
        raise ValueError(f"unknown crop method {crop.method!r}; expected 'similarity' or 'dlib_chip'")
    if crop.scheme not in decoder_template:
        raise ValueError(f"the decoder has no {crop.scheme!r} template (has {sorted(decoder_template)})")
    source = np.asarray(decoder_template[crop.scheme], np.float64)
    return similarity_transform(source, np.asarray(crop.template, np.float64))


def crop_to(images: torch.Tensor, decoder_template: Mapping[str, Points], crop: CropSpec,
            padding_mode: str = "zeros") -> torch.Tensor:
    """Decoder-frame images [B, 3, H, W] warped to `crop`: [B, 3, S, S], bilinear, differentiable.

    Outside the decoder's frame is black ("zeros"), as explainer.faces.align fills outside a photo;
    "border" repeats the edge instead. No antialiasing: decoder faces are upsampled (64 -> 112 / 150).
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images [B, 3, H, W], got {tuple(images.shape)}")
    batch, _, height, width = images.shape
    size = crop.size
    theta = _grid_theta(crop_matrix(decoder_template, crop), (height, width), size)
    theta = torch.as_tensor(theta, dtype=images.dtype, device=images.device).expand(batch, 2, 3)
    grid = F.affine_grid(theta, [batch, 3, size, size], align_corners=False)
    crops = F.grid_sample(images, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False)
    assert crops.shape == (batch, 3, size, size), crops.shape
    return crops


def _grid_theta(matrix: np.ndarray, source_hw: tuple[int, int], size: int) -> np.ndarray:
    """affine_grid's theta: normalised output coordinates -> normalised source coordinates.

    `matrix` maps source pixels to output pixels; grid_sample asks the other way round, so we invert
    it and wrap it between the (align_corners=False) pixel <-> normalised conversions.
    """
    height, width = source_hw
    to_output = np.vstack([matrix, [0.0, 0.0, 1.0]])
    # normalised output n -> output pixel centre x = (n + 1) S / 2 - 1/2
    from_normalised_output = np.array([[size / 2, 0, (size - 1) / 2], [0, size / 2, (size - 1) / 2], [0, 0, 1]])
    # source pixel centre x -> normalised (2x + 1) / W - 1
    to_normalised_source = np.array([[2 / width, 0, 1 / width - 1], [0, 2 / height, 1 / height - 1], [0, 0, 1]])
    theta = to_normalised_source @ np.linalg.inv(to_output) @ from_normalised_output
    return theta[:2]


def warp_affine(images: torch.Tensor, matrix: np.ndarray, size: int, padding_mode: str = "zeros") -> torch.Tensor:
    """Images [B, 3, H, W] warped by the 2x3 `matrix` (input pixel centres -> output pixel centres) to
    [B, 3, size, size]: bilinear, differentiable, the same conventions as crop_to (e.g. one recognizer's
    aligned crop seen in another recognizer's frame)."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images [B, 3, H, W], got {tuple(images.shape)}")
    batch, _, height, width = images.shape
    theta = _grid_theta(np.asarray(matrix, np.float64), (height, width), size)
    theta = torch.as_tensor(theta, dtype=images.dtype, device=images.device).expand(batch, 2, 3)
    grid = F.affine_grid(theta, [batch, 3, size, size], align_corners=False)
    warped = F.grid_sample(images, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False)
    assert warped.shape == (batch, 3, size, size), warped.shape
    return warped
