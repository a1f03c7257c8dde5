"""68 landmarks on ATTRIBUTE_CROP crops, with a verdict on whether they are believable.

The faceplugin 68-point network (explainer.faces.landmarks.predict_68) runs on each crop from the box a
face has in this frame (frame.FACE_BOX), with its usual two re-centring passes. No detector runs: crops
are aligned already, from a photo or a decoder's frame.

An estimate is valid when all of these hold (thresholds in units of the template's eye distance, 38.5 px):
  - every point is finite and within the crop grown by a quarter of its side;
  - the five arcface points derived from the 68 lie within 0.4 of where ATTRIBUTE_CROP puts them (the
    crop was aligned on those points, found on the full photo: on real crops the worst point is off by
    0.12 median, 0.26 at the 99th percentile; DCGAN samples, which sit within a few pixels of the
    decoder's template, 0.2 median);
  - the shape is plausible: its Procrustes residual off the fitted shape space (shape.py) is within the
    limit fitted on training faces.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explainer.attributes.frame import ATTRIBUTE_CROP, CROP_SIZE, FACE_BOX
from explainer.faces.detect import HOG, FaceBox
from explainer.faces.landmarks import arcface5_from_68, predict_68, predict_dlib5

TEMPLATE = np.asarray(ATTRIBUTE_CROP.template, np.float64)
EYE_DISTANCE = float(np.linalg.norm(TEMPLATE[1] - TEMPLATE[0]))
MAX_TEMPLATE_ERROR = 0.4  # worst arcface5 point off the template, in eye distances
_MARGIN = CROP_SIZE / 4
_CROP_BOX = FaceBox(*FACE_BOX, score=0.0, detector=HOG)

# iBUG 68-point index of each point's mirror image (a horizontal flip maps point i to MIRROR[i]).
MIRROR = np.array([16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0,
                   26, 25, 24, 23, 22, 21, 20, 19, 18, 17,
                   27, 28, 29, 30, 35, 34, 33, 32, 31,
                   45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40,
                   54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55,
                   64, 63, 62, 61, 60, 67, 66, 65])


@dataclass(frozen=True)
class CropLandmarks:
    """points [B, 68, 2] (crop pixel centres, iBUG order), valid [B], and why: template_error [B] (worst
    arcface5 point off the template, eye distances) and shape_residual [B] (off the shape space)."""

    points: np.ndarray
    valid: np.ndarray
    template_error: np.ndarray
    shape_residual: np.ndarray


def crop_landmarks(pixels: np.ndarray, *, check_shape: bool = True) -> CropLandmarks:
    """Landmarks of uint8 RGB crops [B, S, S, 3]. `check_shape=False` skips the shape-space test (used
    when fitting that space)."""
    assert pixels.ndim == 4 and pixels.shape[1:] == (CROP_SIZE, CROP_SIZE, 3), pixels.shape
    points = np.stack([predict_68(image, _CROP_BOX) for image in pixels]) if len(pixels) else np.zeros((0, 68, 2))
    finite = np.isfinite(points).all((1, 2))
    inside = ((points > -_MARGIN) & (points < CROP_SIZE - 1 + _MARGIN)).all((1, 2))
    template_error = np.array([np.linalg.norm(arcface5_from_68(p) - TEMPLATE, axis=1).max() / EYE_DISTANCE
                               if ok else np.inf for p, ok in zip(points, finite)])
    valid = finite & inside & (template_error <= MAX_TEMPLATE_ERROR)
    residual = np.full(len(points), np.nan)
    if check_shape and len(points):
        from explainer.attributes.shape import load_basis

        basis = load_basis()
        residual[finite] = basis.residual(points[finite])
        valid &= np.nan_to_num(residual, nan=np.inf) <= basis.max_residual
    return CropLandmarks(points=points, valid=valid, template_error=template_error, shape_residual=residual)


def dlib5_on_crops(pixels: np.ndarray) -> np.ndarray:
    """dlib's 5-point predictor on each crop from the same fixed box: [B, 5, 2] (a second opinion)."""
    return np.stack([predict_dlib5(image, _CROP_BOX) for image in pixels]) if len(pixels) else np.zeros((0, 5, 2))


def mirror_points(points: np.ndarray, width: int = CROP_SIZE) -> np.ndarray:
    """The landmarks of the horizontally mirrored crop: x -> width - 1 - x, indices swapped left/right."""
    mirrored = points[..., MIRROR, :].copy()
    mirrored[..., 0] = width - 1 - mirrored[..., 0]
    return mirrored
