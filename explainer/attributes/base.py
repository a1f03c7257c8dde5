"""The AttributeEstimator contract, and FaceBatch: one batch of crops with the work estimators share.

Every estimator reads ATTRIBUTE_CROP crops (float [B, 3, S, S] in [0, 1]) and returns values
np.float64 [B, dim] and valid np.bool_ [B]. An estimate that could not be made (no plausible landmarks,
an empty region, a non-finite network output) is valid=False and its values are NaN, never zero, so a
careless caller fails loudly instead of averaging invented numbers.
"""
from __future__ import annotations

from functools import cached_property

import cv2
import numpy as np
import torch

from explainer.attributes.frame import CROP_SIZE, check_crops

# UltraFace confidence for `face_present` (fr_detect.js uses 0.65 on whole photos; on a crop that is all
# face, 0.5 finds 86 % of DCGAN samples and 100 % of real crops, and nothing on blank or noise crops).
FACE_CONFIDENCE = 0.5
GROUPS = ("structure", "texture", "accessory", "custom", "lbp")
KINDS = ("continuous", "categorical")


class FaceBatch:
    """A batch of ATTRIBUTE_CROP crops; shared intermediate results are computed once, on first use."""

    def __init__(self, crops: torch.Tensor | np.ndarray) -> None:
        self.pixels = check_crops(crops)  # uint8 RGB [B, S, S, 3]
        self.cache: dict[str, object] = {}  # for estimator families' own shared results

    def __len__(self) -> int:
        return len(self.pixels)

    @cached_property
    def lab(self) -> np.ndarray:
        """CIELAB (D65) of every pixel, float32 [B, S, S, 3]: L* in [0, 100], a*, b* about [-128, 127]."""
        rgb = self.pixels.astype(np.float32) / 255.0
        return np.stack([cv2.cvtColor(image, cv2.COLOR_RGB2Lab) for image in rgb]) if len(rgb) else \
            np.zeros((0, CROP_SIZE, CROP_SIZE, 3), np.float32)

    @cached_property
    def grey(self) -> np.ndarray:
        """uint8 grey [B, S, S] (ITU-R 601 luma, as cv2)."""
        return np.stack([cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) for image in self.pixels]) if len(self) else \
            np.zeros((0, CROP_SIZE, CROP_SIZE), np.uint8)

    @cached_property
    def outside(self) -> np.ndarray:
        """bool [B, S, S]: pixels outside the photo or the decoder's frame. Alignment and crops_from_decoder
        fill those with exact black (0, 0, 0), which a real dark pixel almost never is in all channels."""
        return (self.pixels == 0).all(-1)

    @cached_property
    def landmarks(self):
        """68 landmarks on each crop with their validity (landmarks.CropLandmarks)."""
        from explainer.attributes.landmarks import crop_landmarks

        return crop_landmarks(self.pixels)

    @cached_property
    def dlib5(self) -> np.ndarray:
        """dlib's five points on each crop [B, 5, 2], from the fixed face box (landmarks.dlib5_on_crops)."""
        from explainer.attributes.landmarks import dlib5_on_crops

        return dlib5_on_crops(self.pixels)

    @cached_property
    def face_present(self) -> np.ndarray:
        """bool [B]: is there a face where the frame puts one? Believable landmarks say yes; where they
        are not (a profile, an odd recovered face), the UltraFace detector is asked, and must find a face
        whose centre lies within the crop's middle half. A blank or noise crop passes neither, so
        estimators that would answer anything (the pretrained nets, the accessory classifiers) say invalid."""
        from explainer.faces.detect import ultraface_faces

        present = self.landmarks.valid.copy()
        middle = (CROP_SIZE / 4, 3 * CROP_SIZE / 4)
        for index in np.flatnonzero(~present):
            for face in ultraface_faces(self.pixels[index], confidence=FACE_CONFIDENCE):
                x, y = face.centre
                if middle[0] <= x <= middle[1] and middle[0] <= y <= middle[1]:
                    present[index] = True
                    break
        return present


class AttributeEstimator:
    """One attribute. Subclasses set the four class attributes and implement `_estimate(batch)`."""

    name: str
    group: str  # one of GROUPS
    kind: str  # "continuous" or "categorical" (probabilities)
    dim: int
    description: str = ""

    def estimate(self, crops: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """values np.float64 [B, dim] (NaN where invalid), valid np.bool_ [B] for ATTRIBUTE_CROP crops."""
        return self.estimate_batch(FaceBatch(crops))

    def estimate_batch(self, batch: FaceBatch) -> tuple[np.ndarray, np.ndarray]:
        """As `estimate`, on a FaceBatch whose shared work other estimators may already have done."""
        values, valid = self._estimate(batch)
        values = np.asarray(values, np.float64).reshape(len(batch), self.dim)
        valid = np.asarray(valid, np.bool_).reshape(len(batch))
        valid = valid & np.isfinite(values).all(1)  # a non-finite "estimate" is no estimate
        values = np.where(valid[:, None], values, np.nan)
        assert values.shape == (len(batch), self.dim) and valid.shape == (len(batch),)
        return values, valid

    def _estimate(self, batch: FaceBatch) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, group={self.group!r}, kind={self.kind!r}, dim={self.dim})"
