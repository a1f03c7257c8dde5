"""Landmark-defined regions of an ATTRIBUTE_CROP crop, as boolean masks [S, S].

All sizes are in units of the face's own eye distance (`iod`, between the two eye centres of the 68
points), so regions scale with the face. Pixels outside the photo / decoder frame (FaceBatch.outside)
are removed from every region by the caller.

- cheeks: two discs of radius 0.22 iod, centred on the mean of the six points around each cheek
  (lower eyelid 40/41 or 46/47, nose wing 31 or 35, mouth corner 48 or 54, jaw 2/3 or 13/14).
- hair band: above the forehead: from the top of the crop down to 0.5 iod above the eyebrows' mean
  height, between the outer eye corners widened by 0.3 iod each side (the crown, where hair, a hat or a
  bald scalp is, and little background).
- irises: inside each eye's six-point outline (36-41, 42-47), the darker half of its pixels by L*
  (the iris and pupil, not the white of the eye).
- ear lobes: discs of radius 0.3 iod, 0.25 iod outward of the jaw points 2 and 14 (where earrings hang).
"""
from __future__ import annotations

import cv2
import numpy as np

from explainer.attributes.frame import CROP_SIZE

_CHEEK_POINTS = ((40, 41, 31, 48, 2, 3), (46, 47, 35, 54, 13, 14))


def eye_distance(points: np.ndarray) -> float:
    left, right = points[36:42].mean(0), points[42:48].mean(0)
    return float(np.linalg.norm(right - left))


def _grid() -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:CROP_SIZE, 0:CROP_SIZE].astype(np.float64)
    return x, y


_X, _Y = _grid()


def disc(centre: np.ndarray, radius: float) -> np.ndarray:
    return (_X - centre[0]) ** 2 + (_Y - centre[1]) ** 2 <= radius ** 2


def polygon(points: np.ndarray) -> np.ndarray:
    mask = np.zeros((CROP_SIZE, CROP_SIZE), np.uint8)
    # fillPoly works on integer vertices; 4 bits of sub-pixel precision keep small eyes honest.
    cv2.fillPoly(mask, [np.round(points * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool)


def cheeks(points: np.ndarray) -> np.ndarray:
    iod = eye_distance(points)
    return disc(points[list(_CHEEK_POINTS[0])].mean(0), 0.22 * iod) | \
        disc(points[list(_CHEEK_POINTS[1])].mean(0), 0.22 * iod)


def hair_band(points: np.ndarray) -> np.ndarray:
    iod = eye_distance(points)
    bottom = points[17:27, 1].mean() - 0.5 * iod
    left = points[36, 0] - 0.3 * iod
    right = points[45, 0] + 0.3 * iod
    return (_Y <= bottom) & (_X >= left) & (_X <= right)


def eyes(points: np.ndarray) -> np.ndarray:
    return polygon(points[36:42]) | polygon(points[42:48])


def ear_lobes(points: np.ndarray) -> np.ndarray:
    iod = eye_distance(points)
    centre_x = (points[2, 0] + points[14, 0]) / 2
    masks = []
    for index in (2, 14):
        outward = np.sign(points[index, 0] - centre_x)
        masks.append(disc(points[index] + np.array([outward * 0.25 * iod, 0.0]), 0.3 * iod))
    return masks[0] | masks[1]
