"""Alignment: warp a photo so the face lands on a model's canonical crop (`CropSpec`).

Coordinates everywhere are pixel centres: pixel (row r, column c) is the point (x=c, y=r), as in dlib
and OpenCV's warpAffine.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import cv2
import numpy as np
import torch

from explainer.core.geometry import CropSpec, similarity_transform

if TYPE_CHECKING:
    from explainer.faces.landmarks import Landmarks


def align(image: np.ndarray, landmarks: Landmarks, crop: CropSpec) -> np.ndarray:
    """The face of `landmarks` in `image` (uint8 RGB) warped to `crop`: uint8 RGB [S, S, 3].

    method "dlib_chip": dlib.get_face_chip on the 5-point shape with crop.padding (dlib's own template;
    crop.template is not used). method "similarity": least-squares rotation + uniform scale + shift
    taking the crop.scheme points onto crop.template, then a bilinear warp.
    """
    if crop.method == "dlib_chip":
        import dlib

        chip = dlib.get_face_chip(np.ascontiguousarray(image), landmarks.dlib_shape(), size=crop.size,
                                  padding=crop.padding)
        return np.asarray(chip, dtype=np.uint8)
    if crop.method == "similarity":
        matrix = similarity_transform(landmarks.scheme(crop.scheme), np.asarray(crop.template, np.float64))
        # Black outside the photo, as insightface's norm_crop does: the ArcFace-family models saw black
        # borders in training, whereas replicated edges smear skin-like streaks into the crop.
        return warp(image, matrix, crop.size, border=cv2.BORDER_CONSTANT)
    raise ValueError(f"unknown crop method {crop.method!r}; expected 'similarity' or 'dlib_chip'")


def warp(image: np.ndarray, matrix: np.ndarray, size: int | tuple[int, int], *,
         border: int = cv2.BORDER_CONSTANT, border_value: float = 0) -> np.ndarray:
    """cv2.warpAffine (bilinear) of `image` by the 2x3 `matrix` (image -> output pixel centres).

    When the warp shrinks by more than 2x, the needed region is first reduced with area averaging:
    plain bilinear sampling would skip pixels and alias (a 600-pixel face onto a 112 crop).
    """
    out_w, out_h = (size, size) if isinstance(size, int) else size
    matrix = np.asarray(matrix, np.float64)
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if scale < 0.5:
        image, matrix = _shrink_region(image, matrix, scale, out_w, out_h)
    value = (border_value,) * 4
    return cv2.warpAffine(np.ascontiguousarray(image), matrix, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=border,
                          borderValue=value)


def _shrink_region(image: np.ndarray, matrix: np.ndarray, scale: float, out_w: int, out_h: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Area-reduce the part of `image` the warp reads to about the output's resolution; adjust `matrix`."""
    inverse = cv2.invertAffineTransform(matrix)
    corners = np.array([[-1, -1], [out_w, -1], [-1, out_h], [out_w, out_h]], np.float64)
    source = corners @ inverse[:, :2].T + inverse[:, 2]
    height, width = image.shape[:2]
    x0 = int(np.clip(np.floor(source[:, 0].min()) - 2, 0, width - 1))
    y0 = int(np.clip(np.floor(source[:, 1].min()) - 2, 0, height - 1))
    x1 = int(np.clip(np.ceil(source[:, 0].max()) + 3, x0 + 1, width))
    y1 = int(np.clip(np.ceil(source[:, 1].max()) + 3, y0 + 1, height))
    region = image[y0:y1, x0:x1]
    new_w, new_h = max(1, round(region.shape[1] * scale)), max(1, round(region.shape[0] * scale))
    if new_w >= region.shape[1] or new_h >= region.shape[0]:
        return image, matrix  # region too thin to reduce; sample it directly
    reduced = cv2.resize(region, (new_w, new_h), interpolation=cv2.INTER_AREA)
    # Pixel centres under resize: reduced = (original - region origin + 0.5) * factor - 0.5.
    fx, fy = new_w / region.shape[1], new_h / region.shape[0]
    to_reduced = np.array([[fx, 0, (0.5 - x0) * fx - 0.5], [0, fy, (0.5 - y0) * fy - 0.5], [0, 0, 1]])
    from_reduced = np.linalg.inv(to_reduced)
    return reduced, (np.vstack([matrix, [0, 0, 1]]) @ from_reduced)[:2]


def to_tensor(crops: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
    """uint8 RGB crops ([S, S, 3], a list of them, or [B, S, S, 3]) to float [B, 3, S, S] in [0, 1]."""
    if isinstance(crops, np.ndarray) and crops.ndim == 3:
        crops = crops[None]
    batch = np.stack(list(crops)) if not isinstance(crops, np.ndarray) else crops
    if batch.ndim != 4 or batch.shape[-1] != 3:
        raise ValueError(f"expected RGB crops [B, H, W, 3], got shape {batch.shape}")
    if batch.dtype != np.uint8:
        raise ValueError(f"expected uint8 crops, got {batch.dtype}")
    return torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2))).float().div_(255.0)
