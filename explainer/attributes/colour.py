"""`skin_color` and `hair_color`: colour moments in CIELAB on landmark-defined regions (regions.py).

Each is 9 numbers: mean, standard deviation and skewness of L*, a* and b* over the region's pixels
(CIELAB under D65: perceptually uniform, so distances mean what they look like). Skewness is the third
standardised moment; for a channel with (almost) no spread (std < 0.5, e.g. a* and b* of a grey photo)
it is 0 by convention (a one-value distribution is symmetric).

- skin: the two cheek discs.
- hair: the hair band above the forehead, minus pixels that look like the face's own skin (within
  ΔE 15 of the cheeks' mean colour), as long as at least a quarter of the band remains; otherwise
  (a bald or shaved head) the whole band, which is then the scalp's colour.

Invalid: no valid landmarks, or fewer than MIN_PIXELS usable pixels in the region.
"""
from __future__ import annotations

import numpy as np

from explainer.attributes import regions
from explainer.attributes.base import AttributeEstimator, FaceBatch

MIN_PIXELS = 30
SKIN_DELTA_E = 15.0


def colour_moments(lab_pixels: np.ndarray) -> np.ndarray:
    """[N, 3] CIELAB pixels -> [9]: mean L a b, std L a b, skewness L a b."""
    mean = lab_pixels.mean(0)
    std = lab_pixels.std(0)
    centred = lab_pixels - mean
    safe = np.where(std < 0.5, 1.0, std)
    skew = np.where(std < 0.5, 0.0, (centred ** 3).mean(0) / safe ** 3)
    return np.concatenate([mean, std, skew])


def _region_pixels(batch: FaceBatch, index: int, mask: np.ndarray) -> np.ndarray:
    return batch.lab[index][mask & ~batch.outside[index]].astype(np.float64)


def skin_pixels(batch: FaceBatch, index: int) -> np.ndarray:
    return _region_pixels(batch, index, regions.cheeks(batch.landmarks.points[index]))


def hair_pixels(batch: FaceBatch, index: int) -> np.ndarray:
    band = _region_pixels(batch, index, regions.hair_band(batch.landmarks.points[index]))
    skin = skin_pixels(batch, index)
    if len(skin) < MIN_PIXELS or len(band) == 0:
        return band
    not_skin = np.linalg.norm(band - skin.mean(0), axis=1) > SKIN_DELTA_E
    return band[not_skin] if not_skin.sum() >= len(band) / 4 else band


class _ColourMoments(AttributeEstimator):
    group = "texture"
    kind = "continuous"
    dim = 9

    def pixels(self, batch: FaceBatch, index: int) -> np.ndarray:
        raise NotImplementedError

    def _estimate(self, batch: FaceBatch):
        values = np.full((len(batch), self.dim), np.nan)
        valid = batch.landmarks.valid.copy()
        for index in np.flatnonzero(valid):
            pixels = self.pixels(batch, index)
            if len(pixels) < MIN_PIXELS:
                valid[index] = False
                continue
            values[index] = colour_moments(pixels)
        return values, valid


class SkinColour(_ColourMoments):
    name = "skin_color"
    description = "CIELAB mean, std, skewness (L*, a*, b*) of the two cheek discs"

    def pixels(self, batch, index):
        return skin_pixels(batch, index)


class HairColour(_ColourMoments):
    name = "hair_color"
    description = "CIELAB mean, std, skewness (L*, a*, b*) of the non-skin pixels of the band above the forehead"

    def pixels(self, batch, index):
        return hair_pixels(batch, index)
