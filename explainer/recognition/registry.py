"""The recognizers facexplain ships, by name: how to convert their upstream weights once, and load them.

Converted weights are cached as plain tensor dicts in `$FACEXPLAIN_HOME/converted/`, named after the
sha256 of the upstream file, so a changed upstream file is never served stale weights.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from explainer import assets
from explainer.assets.store import home, record
from explainer.core.registry import Registry
from explainer.recognition.base import Recognizer
from explainer.recognition.calibration import load_calibrated


@dataclass(frozen=True)
class RecognizerEntry:
    """Everything facexplain needs to know about a built-in recognizer; the rest of the code reads it here.

    The calibrated threshold is looked up by `name` in calibration.json / calibration_lr.json, which
    `facexplain bench verify --calibrate` writes for every entry."""

    name: str
    asset: str
    description: str
    # Upstream file -> plain dict of tensors (None: the model loads straight from the upstream file).
    convert: Callable[[Path], dict] | None
    # Converted dict (or the upstream file's path when `convert` is None) -> Recognizer.
    build: Callable[[object], Recognizer]
    crop: str = "arcface112"  # a name in CROPS; load_recognizer checks the built model agrees
    metric: str = "cosine"  # "cosine" | "euclidean"; checked likewise
    surrogate: str | None = None  # the recognizer transfer counterfactuals are crafted on (another architecture)
    # "module:function" of the reference runtime (uint8 crops [N, S, S, 3] -> embeddings) and what it is,
    # for `facexplain bench equivalence`; None: no reference runtime.
    reference: tuple[str, str] | None = None


# Named crops, for entries and for users' recognizers (`facexplain pack create --crop NAME`).
CROP_NAMES = ("arcface112", "dlib150")


def crop_spec(name: str):
    """The CropSpec named `name` (one of CROP_NAMES)."""
    if name == "arcface112":
        from explainer.recognition.base import ARCFACE_112
        return ARCFACE_112
    if name == "dlib150":
        from explainer.recognition.dlib_resnet import DLIB_CHIP_150
        return DLIB_CHIP_150
    raise ValueError(f"unknown crop {name!r}; known: {', '.join(CROP_NAMES)}")


def _dlib_convert(path: Path) -> dict:
    from explainer.recognition.dlib_resnet import state_dict_from_dat
    return state_dict_from_dat(path)


def _dlib_build(state: dict) -> Recognizer:
    from explainer.recognition.dlib_resnet import load_dlib_resnet
    return load_dlib_resnet(state)


def _mobilefacenet_convert(path: Path) -> dict:
    from explainer.recognition.mobilefacenet import state_dict_from_tflite
    return state_dict_from_tflite(path)


def _mobilefacenet_build(state: dict) -> Recognizer:
    from explainer.recognition.mobilefacenet import load_mobilefacenet
    return load_mobilefacenet(state)


def _faceplugin_build(path: Path) -> Recognizer:
    from explainer.recognition.faceplugin import load_faceplugin_r
    return load_faceplugin_r(path)


# The extension point for a new recognizer: an entry here (conversion + build), nothing else.
RECOGNIZERS: Registry[RecognizerEntry] = Registry("recognizer", {e.name: e for e in [
    RecognizerEntry("dlib-resnet", "dlib-resnet", "dlib ResNet-29 (ResNet-class), 128-D, Euclidean",
                    _dlib_convert, _dlib_build, crop="dlib150", metric="euclidean", surrogate="mobilefacenet",
                    reference=("explainer.recognition.reference:dlib_descriptors", "dlib C++ compute_face_descriptor")),
    RecognizerEntry("mobilefacenet", "mobilefacenet-tflite", "MobileFaceNet (TFLite port), 192-D, Euclidean",
                    _mobilefacenet_convert, _mobilefacenet_build, crop="arcface112", metric="euclidean",
                    surrogate="dlib-resnet",
                    reference=("explainer.recognition.reference:litert_mobilefacenet", "LiteRT interpreter")),
    RecognizerEntry("faceplugin-r", "faceplugin-feature", "faceplugin fr_feature (ONNX port), 512-D, cosine",
                    None, _faceplugin_build, crop="arcface112", metric="cosine", surrogate="dlib-resnet",
                    reference=("explainer.recognition.reference:onnxruntime_faceplugin", "onnxruntime")),
]})


def default_surrogate(name: str) -> str:
    """The surrogate for transfer counterfactuals against recognizer `name`: its entry's, and for a
    user's recognizer dlib's ResNet (an architecture no user's ArcFace-style model shares)."""
    entry = RECOGNIZERS.get(name)
    return entry.surrogate if entry is not None and entry.surrogate else "dlib-resnet"


def reference_runtime(name: str) -> tuple[Callable, str]:
    """(function, description) of recognizer `name`'s reference runtime; KeyError when it has none."""
    import importlib

    entry = _entry(name)
    if entry.reference is None:
        raise KeyError(f"recognizer {name!r} declares no reference runtime")
    target, description = entry.reference
    module, function = target.split(":")
    return getattr(importlib.import_module(module), function), description


def _entry(name: str) -> RecognizerEntry:
    return RECOGNIZERS[name]  # UnknownName lists the registered recognizers


def converted_path(name: str) -> Path:
    entry = _entry(name)
    assets.path(entry.asset)  # raises AssetMissing, naming the fetch command
    digest = record(entry.asset)["files"]
    (upstream_sha,) = digest.values()
    return home() / "converted" / f"{name}-{upstream_sha[:16]}.pt"


def convert(name: str, force: bool = False) -> bool:
    """Convert the upstream weights of `name` into the cache; True if work was done."""
    entry = _entry(name)
    if entry.convert is None:
        return False
    target = converted_path(name)
    if target.is_file() and not force:
        return False
    state = entry.convert(assets.path(entry.asset))
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    torch.save(state, partial)
    partial.rename(target)
    return True


def convert_all(force: bool = False, log=print) -> list[str]:
    done = []
    for name in RECOGNIZERS:
        if convert(name, force=force):
            done.append(name)
            log(f"converted {name} -> {converted_path(name)}")
    return done


@functools.lru_cache(maxsize=None)
def load_recognizer(name: str) -> Recognizer:
    """The named recognizer in eval mode, frozen, with its calibrated threshold; loaded once per process.
    (Users' recognizers, from files: explainer.packs.user_recognizers.)"""
    entry = _entry(name)
    if entry.convert is None:
        model = entry.build(assets.path(entry.asset))
    else:
        convert(name)
        model = entry.build(torch.load(converted_path(name), map_location="cpu", weights_only=True))
    if (model.crop, model.metric.name) != (crop_spec(entry.crop), entry.metric):
        raise ValueError(f"recognizer {name!r}: its entry declares crop {entry.crop} and metric {entry.metric}, "
                         f"the model built has {model.crop} and {model.metric.name}")
    calibrated = load_calibrated(name)
    if calibrated is not None:
        model.threshold = calibrated
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)  # attacks differentiate w.r.t. pixels, never weights
    return model
