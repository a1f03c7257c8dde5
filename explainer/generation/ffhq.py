"""The FFHQ frame: where NVlabs' FFHQ alignment puts a face, and so where an FFHQ-trained generator's
average face sits (the decoder templates of explainer.generation.stylegan2_network)."""
from __future__ import annotations

import numpy as np

from explainer.core.geometry import DLIB68_MEAN_FACE, DLIB_MEAN_FACE_5

# The FFHQ frame. FFHQ's alignment (NVlabs/ffhq-dataset, download_ffhq.py, recreate_aligned_images)
# is defined on dlib's 68 landmarks: eye_left/right = mean of points 36-41 / 42-47, mouth corners =
# points 48 and 54; x = eye_to_eye - rot90(eye_to_mouth), scaled to max(2 |eye_to_eye|,
# 1.8 |eye_to_mouth|); centre c = eye midpoint + 0.1 eye_to_mouth; the output square is c +- x +- y
# (side 2|x|), resampled to 1024 px; rosinality's prepare_data.py resizes those images whole to
# 256 / 128 px, so the frame scales linearly.
# We run that procedure on dlib's mean face (dlib/image_transforms/interpolation.h,
# get_face_chip_details: mean_face_shape_x/y of points 17-67, in units of the face box; the points
# it uses are explainer.core.geometry.DLIB68_MEAN_FACE), which gives where the FFHQ procedure puts an
# average face:
#   arcface5 = the two eye centres (the same means FFHQ uses), nose tip (point 30), mouth corners
#              (points 48, 54);
#   dlib5    = dlib's 5-point mean face (DLIB_MEAN_FACE_5, the same face-box units; within 0.003 of
#              points 45, 42, 36, 39, 33 of the 68-point mean face).
# Output: pixel centres (continuous frame coordinate - 0.5), the convention of our crop templates.
# At 256 px: arcface5 (95.5, 120.7) (159.5, 120.7) (127.5, 156.9) (99.0, 188.9) (156.0, 188.9);
# dlib5 (172.2, 120.4) (146.4, 122.3) (82.8, 120.4) (108.6, 122.3) (127.5, 170.5).
# Cross-check: the same procedure on the ArcFace 112 template (a different mean face) lands within
# 1.3 px per coordinate for the eyes and nose and 3.1 px for the mouth corners (ArcFace's mouth is
# narrower and lower) at 256 px.
# These are the frame of an FFHQ-trained generator's *average* face; individual faces and other
# training sets differ (measure a user's generator if it matters).


def ffhq_frame(eye_left: np.ndarray, eye_right: np.ndarray, mouth_left: np.ndarray,
               mouth_right: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FFHQ's crop square for a face: (top-left corner, x half-axis, y half-axis), in input units."""
    eye_mid = (eye_left + eye_right) / 2
    eye_to_eye = eye_right - eye_left
    eye_to_mouth = (mouth_left + mouth_right) / 2 - eye_mid
    x = eye_to_eye - np.array([-eye_to_mouth[1], eye_to_mouth[0]])  # flipud(e2m) * [-1, 1]
    x = x / np.hypot(*x) * max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.array([-x[1], x[0]])
    centre = eye_mid + eye_to_mouth * 0.1
    return centre - x - y, x, y


def ffhq_templates(size: int) -> dict[str, tuple[tuple[float, float], ...]]:
    """Five-point templates of the FFHQ frame at `size` px, derived as described above."""
    face = {i: np.array(p) for i, p in DLIB68_MEAN_FACE.items()}
    eye_left = np.mean([face[i] for i in range(36, 42)], axis=0)
    eye_right = np.mean([face[i] for i in range(42, 48)], axis=0)
    corner, x, y = ffhq_frame(eye_left, eye_right, face[48], face[54])
    side = 2 * np.hypot(*x)

    def to_pixels(p: np.ndarray) -> tuple[float, float]:
        d = np.asarray(p) - corner
        u, v = d @ x / np.hypot(*x) / side, d @ y / np.hypot(*y) / side
        return round(float(u * size - 0.5), 4), round(float(v * size - 0.5), 4)

    arcface5 = (eye_left, eye_right, face[30], face[48], face[54])
    return {"arcface5": tuple(to_pixels(p) for p in arcface5),
            "dlib5": tuple(to_pixels(np.array(p)) for p in DLIB_MEAN_FACE_5)}


FFHQ_TEMPLATES_256 = ffhq_templates(256)
FFHQ_TEMPLATES_128 = ffhq_templates(128)
