"""The 24 custom attributes of the paper's sample-specific experiment: 21 landmark ratios and the colours
of skin, hair and iris. One-line definitions: docs/attributes.md (kept in step with RATIOS below).

Ratios use the 68 crop landmarks (iBUG indices). "Left"/"right" are the image's left and right (the
subject's right and left). Eye centre: mean of an eye's six points; eye distance: between the eye
centres. Each ratio is scale-free, so it does not depend on the crop's zoom. Invalid when the landmarks
are (landmarks.py), or a denominator is degenerate (under 1 px).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from explainer.attributes import regions
from explainer.attributes.base import AttributeEstimator, FaceBatch
from explainer.attributes.colour import MIN_PIXELS, hair_pixels, skin_pixels

Points = np.ndarray


def _d(p: Points, a, b) -> float:
    pa = p[a] if isinstance(a, (int, np.integer)) else a
    pb = p[b] if isinstance(b, (int, np.integer)) else b
    return float(np.linalg.norm(pa - pb))


def _eye_left(p): return p[36:42].mean(0)
def _eye_right(p): return p[42:48].mean(0)
def _eye_mid(p): return (_eye_left(p) + _eye_right(p)) / 2
def _brow_centre(p): return p[17:27].mean(0)
def _mouth_centre(p): return (p[51] + p[57]) / 2
def _eye_distance(p): return _d(p, _eye_left(p), _eye_right(p))
def _mouth_width(p): return _d(p, 48, 54)
def _nose_width(p): return _d(p, 31, 35)
def _face_width(p): return _d(p, 0, 16)
def _nose_length(p): return _d(p, 27, 33)
def _nose_to_underjaw(p): return _d(p, 33, 8)
def _brow_width(p): return (_d(p, 17, 21) + _d(p, 22, 26)) / 2
def _eye_width(p): return (_d(p, 36, 39) + _d(p, 42, 45)) / 2


def _eye_opening(p):
    left = (_d(p, 37, 41) + _d(p, 38, 40)) / 2
    right = (_d(p, 43, 47) + _d(p, 44, 46)) / 2
    return (left + right) / 2


# name -> (numerator, denominator, one-line definition). Symmetric under a mirror image except the two
# eye-to-face-edge ratios, which swap (MIRRORED_PAIRS).
RATIOS: dict[str, tuple[Callable, Callable, str]] = {
    "nose_width_to_mouth_width": (_nose_width, _mouth_width, "nose width (31-35) / mouth width (48-54)"),
    "eye_distance_to_mouth_width": (_eye_distance, _mouth_width, "distance between eye centres / mouth width"),
    "left_eye_to_face_edge_to_mouth_width": (lambda p: _d(p, 36, 0), _mouth_width,
                                             "image-left eye's outer corner (36) to face edge (jaw 0) / mouth width"),
    "right_eye_to_face_edge_to_mouth_width": (lambda p: _d(p, 45, 16), _mouth_width,
                                              "image-right eye's outer corner (45) to face edge (jaw 16) / mouth width"),
    "nose_length_to_nose_to_underjaw": (_nose_length, _nose_to_underjaw,
                                        "nose length (27-33) / nose base to chin bottom (33-8)"),
    "eyebrow_width_to_nose_width": (_brow_width, _nose_width, "mean eyebrow width (17-21, 22-26) / nose width"),
    "mouth_to_underjaw_to_eyebrow_to_mouth": (lambda p: _d(p, _mouth_centre(p), 8),
                                              lambda p: _d(p, _brow_centre(p), _mouth_centre(p)),
                                              "mouth centre to chin bottom / eyebrows' centre to mouth centre"),
    "eye_to_nose_to_nose_to_underjaw": (lambda p: _d(p, _eye_mid(p), 33), _nose_to_underjaw,
                                        "midpoint of the eyes to nose base / nose base to chin bottom"),
    "eye_distance_to_face_width": (_eye_distance, _face_width, "distance between eye centres / face width (0-16)"),
    "eye_width_to_eyebrow_width": (_eye_width, _brow_width, "mean eye width (36-39, 42-45) / mean eyebrow width"),
    "face_height_to_face_width": (lambda p: _d(p, _brow_centre(p), 8), _face_width,
                                  "eyebrows' centre to chin bottom / face width"),
    "jaw_width_to_face_width": (lambda p: _d(p, 4, 12), _face_width, "jaw width (4-12) / face width (0-16)"),
    "mouth_width_to_face_width": (_mouth_width, _face_width, "mouth width / face width"),
    "eye_openness": (_eye_opening, _eye_width, "mean eyelid opening (37-41, 38-40, 43-47, 44-46) / mean eye width"),
    "mouth_openness": (lambda p: _d(p, 62, 66), _mouth_width, "inner lip gap (62-66) / mouth width"),
    "upper_to_lower_lip_thickness": (lambda p: _d(p, 51, 62), lambda p: _d(p, 66, 57),
                                     "upper lip thickness (51-62) / lower lip thickness (66-57)"),
    "nose_width_to_face_width": (_nose_width, _face_width, "nose width / face width"),
    "eyebrow_height_to_eye_distance": (lambda p: (_d(p, 19, _eye_left(p)) + _d(p, 24, _eye_right(p))) / 2,
                                       _eye_distance, "mean eyebrow-peak (19, 24) to eye-centre height / eye distance"),
    "chin_height_to_face_height": (lambda p: _d(p, 57, 8), lambda p: _d(p, 27, 8),
                                   "lower lip bottom to chin bottom (57-8) / nose bridge top to chin bottom (27-8)"),
    "philtrum_to_nose_length": (lambda p: _d(p, 33, 51), _nose_length, "nose base to upper lip (33-51) / nose length"),
    "inner_eye_distance_to_eye_distance": (lambda p: _d(p, 39, 42), _eye_distance,
                                           "inner eye corners' distance (39-42) / distance between eye centres"),
}
MIRRORED_PAIRS = (("left_eye_to_face_edge_to_mouth_width", "right_eye_to_face_edge_to_mouth_width"),)

COLOURS: dict[str, tuple[int, str]] = {
    "skin_tone_ita": (1, "individual typology angle of the cheeks, atan2(L* - 50, b*) in degrees (higher = lighter)"),
    "hair_color_lab": (3, "mean CIELAB (L*, a*, b*) of the hair pixels (colour.py, hair_color's region)"),
    "iris_color_lab": (3, "mean CIELAB of the darker half of the pixels inside both eye outlines"),
}
CUSTOM_NAMES = tuple(RATIOS) + tuple(COLOURS)
assert len(CUSTOM_NAMES) == 24, len(CUSTOM_NAMES)


class LandmarkRatio(AttributeEstimator):
    group = "custom"
    kind = "continuous"
    dim = 1

    def __init__(self, name: str) -> None:
        self.name = name
        self._numerator, self._denominator, self.description = RATIOS[name]

    def _estimate(self, batch: FaceBatch):
        landmarks = batch.landmarks
        values = np.full((len(batch), 1), np.nan)
        valid = landmarks.valid.copy()
        for index in np.flatnonzero(valid):
            points = landmarks.points[index]
            denominator = self._denominator(points)
            if denominator < 1.0:
                valid[index] = False
                continue
            values[index, 0] = self._numerator(points) / denominator
        return values, valid


def iris_pixels(batch: FaceBatch, index: int) -> np.ndarray:
    mask = regions.eyes(batch.landmarks.points[index]) & ~batch.outside[index]
    lab = batch.lab[index][mask].astype(np.float64)
    if len(lab) == 0:
        return lab
    return lab[lab[:, 0] <= np.median(lab[:, 0])]


class CustomColour(AttributeEstimator):
    group = "custom"
    kind = "continuous"

    def __init__(self, name: str) -> None:
        self.name = name
        self.dim, self.description = COLOURS[name]

    def _estimate(self, batch: FaceBatch):
        values = np.full((len(batch), self.dim), np.nan)
        valid = batch.landmarks.valid.copy()
        minimum = 8 if self.name == "iris_color_lab" else MIN_PIXELS  # an iris is ~25 px at this size
        for index in np.flatnonzero(valid):
            if self.name == "skin_tone_ita":
                pixels = skin_pixels(batch, index)
            elif self.name == "hair_color_lab":
                pixels = hair_pixels(batch, index)
            else:
                pixels = iris_pixels(batch, index)
            if len(pixels) < minimum:
                valid[index] = False
                continue
            mean = pixels.mean(0)
            values[index] = [np.degrees(np.arctan2(mean[0] - 50.0, mean[2]))] if self.dim == 1 else mean
        return values, valid


def custom_estimators() -> list[AttributeEstimator]:
    return [LandmarkRatio(name) for name in RATIOS] + [CustomColour(name) for name in COLOURS]
