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
