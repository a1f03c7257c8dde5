"""Users' own recognizers: an ONNX file or a checkpoint of a layout `facexplain checkpoint identify` knows,
described by a small `recognizer.json` so that packs on disk and the trainer can load it again.

A spec records the file (relative to the spec's folder when it lies there), its sha256 (checked on every
load: a pack never runs on other weights than it was made with), how the file was identified, the crop,
the metric, the ONNX pixel normalisation, and the threshold with its source once calibrated.
"""
from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass
from pathlib import Path

from explainer.core.checkpoint_io import CheckpointError
from explainer.core.errors import FacexplainError
from explainer.recognition.base import Metric, Recognizer, Threshold
from explainer.recognition.registry import CROP_NAMES, crop_spec, load_recognizer

SPEC_NAME = "recognizer.json"
RECOGNIZER_FAMILIES = ("ir-se", "iresnet", "mobilefacenet", "insightface-mbf")  # checkpoints.Family names


class RecognizerFileError(FacexplainError):
    """A user's recognizer file that cannot serve as a recognizer; the message says why."""


@dataclass(frozen=True)
class UserRecognizerSpec:
    name: str
    file: str  # relative to the spec's folder, or absolute
    sha256: str
    format: str  # "onnx" | "checkpoint"
    layout: str  # what `checkpoint identify` called it
    crop: str  # a name in CROP_NAMES
    metric: str  # "cosine" | "euclidean"
    embedding_dim: int
    pixel_mean: tuple[float, float, float] = (127.5, 127.5, 127.5)  # ONNX only: (p - mean) / std, p in 0..255
    pixel_std: tuple[float, float, float] = (127.5, 127.5, 127.5)
    channel_order: str = "RGB"
    threshold: dict | None = None  # {"value", "fmr", "source", ...}: set by calibration

    def as_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> UserRecognizerSpec:
        data = dict(data)
        for key in ("pixel_mean", "pixel_std"):
            data[key] = tuple(data[key])
        return cls(**data)


def sha256_of(path: Path) -> str:
    from explainer.assets.fetch import sha256_file

    return sha256_file(path)


def write_spec(spec: UserRecognizerSpec, directory: Path) -> Path:
    path = Path(directory) / SPEC_NAME
    path.write_text(json.dumps(spec.as_json(), indent=2, sort_keys=True) + "\n")
    return path


def read_spec(path: Path) -> UserRecognizerSpec:
    return UserRecognizerSpec.from_json(json.loads(Path(path).read_text()))


def _resolve(spec: UserRecognizerSpec, spec_path: Path) -> Path:
    file = Path(spec.file)
    return file if file.is_absolute() else spec_path.parent / file


def build(spec: UserRecognizerSpec, file: Path) -> Recognizer:
    """The recognizer `spec` describes, from `file` (not checked against the hash: see load_user_recognizer)."""
    from explainer.recognition.onnx_backed import OnnxModelError, OnnxPreprocessing, OnnxRecognizer

    if spec.crop not in CROP_NAMES:
        raise RecognizerFileError(f"unknown crop {spec.crop!r}; known: {', '.join(CROP_NAMES)}")
    crop, metric = crop_spec(spec.crop), Metric(spec.metric)
    if spec.format == "onnx":
        try:
            model = OnnxRecognizer(file, name=spec.name, metric=metric, crop=crop, preprocessing=OnnxPreprocessing(
                size=crop.size, mean=spec.pixel_mean, std=spec.pixel_std, channel_order=spec.channel_order))
        except OnnxModelError as error:
            raise RecognizerFileError(f"{file}: {error}") from None
    else:
        model = _from_checkpoint(file)
        if model.crop != crop:
            raise RecognizerFileError(f"{file}: a {spec.layout} network takes {model.crop.size} px ArcFace crops "
                                      f"(--crop arcface112), not {spec.crop}")
        model.metric = metric
        model.name = spec.name
    if spec.threshold is not None:
        model.threshold = Threshold(spec.threshold["value"], spec.threshold.get("fmr"), spec.threshold["source"])
    model.weights_sha256 = {Path(spec.file).name: spec.sha256}  # what provenance reports
    model.eval().requires_grad_(False)  # attacks differentiate w.r.t. pixels, never weights
    return model


def _from_checkpoint(file: Path) -> Recognizer:
    from explainer.packs.checkpoints import identify

    try:
        ident = identify(file)
    except CheckpointError as error:
        raise RecognizerFileError(f"unknown layout: {error}") from None
    if ident.family not in RECOGNIZER_FAMILIES:
        raise RecognizerFileError(f"{file}: identified as {ident.layout}, which is not a face recognizer (those are "
                                  f"IR-SE, iresnet and MobileFaceNet layouts: see `facexplain checkpoint identify`)")
    if not ident.loads_strict:
        raise RecognizerFileError(f"{file}: {ident.layout} layout, but it does not load strictly: missing "
                                  f"{ident.missing[:5]}, unexpected {ident.unexpected[:5]}, shape mismatches "
                                  f"{ident.shape_mismatches[:5]}")
    return ident.module


def describe_file(file: Path, name: str, crop: str | None = None, metric: str | None = None,
                  pixel_mean: float | None = None, pixel_std: float | None = None,
                  channel_order: str = "RGB") -> tuple[UserRecognizerSpec, Recognizer]:
    """Identify `file` (ONNX, or a checkpoint layout we know), build it, and return its spec (no threshold
    yet) with the built recognizer. Clear errors for an unknown layout or a wrong input size."""
    file = Path(file)
    if not file.is_file():
        raise RecognizerFileError(f"no recognizer file at {file}")
    is_onnx = file.suffix.lower() == ".onnx"
    if is_onnx:
        from explainer.packs.checkpoints import NotACheckpoint, identify_onnx

        try:
            layout = identify_onnx(file).layout
        except NotACheckpoint:
            layout = "onnx"  # any ONNX recognizer runs; the insightface names are only a label
    else:
        layout = None
    spec = UserRecognizerSpec(
        name=name, file=str(file.resolve()), sha256=sha256_of(file), format="onnx" if is_onnx else "checkpoint",
        layout=layout or "", crop=crop or "arcface112", metric=metric or "cosine", embedding_dim=0,
        pixel_mean=(pixel_mean if pixel_mean is not None else 127.5,) * 3,
        pixel_std=(pixel_std if pixel_std is not None else 127.5,) * 3, channel_order=channel_order)
    if not is_onnx:
        ident_model = _from_checkpoint(file)
        from explainer.packs.checkpoints import identify  # the layout name, for the manifest (already cached on disk)

        spec = dataclasses.replace(spec, layout=identify(file, load=False).layout,
                                   crop=crop or _crop_name(ident_model), metric=metric or ident_model.metric.name)
    model = build(spec, file)
    return dataclasses.replace(spec, embedding_dim=int(model.embedding_dim)), model


def _crop_name(model: Recognizer) -> str:
    return next(n for n in CROP_NAMES if crop_spec(n) == model.crop)


def load_user_recognizer(spec_path: Path) -> Recognizer:
    """The recognizer of a recognizer.json, after checking its file still has the recorded sha256; loaded
    once per version of the spec (a pack made again under its name is loaded again)."""
    from explainer.assets.fetch import file_stamp

    return _load_user_recognizer(spec_path, file_stamp(spec_path))


@functools.lru_cache(maxsize=None)
def _load_user_recognizer(spec_path: Path, stamp: tuple[int, int] | None) -> Recognizer:
    spec = read_spec(spec_path)
    file = _resolve(spec, spec_path)
    if not file.is_file():
        raise RecognizerFileError(f"{spec.name}: its recognizer file {file} is missing")
    if sha256_of(file) != spec.sha256:
        raise RecognizerFileError(f"{spec.name}: {file} has changed since the pack was made (sha256 differs); "
                                  "make the pack again")
    return build(spec, file)


load_user_recognizer.cache_clear = _load_user_recognizer.cache_clear


def load_any_recognizer(name_or_spec: str) -> Recognizer:
    """A built-in recognizer by registry name, or a user's by the path of its recognizer.json."""
    if name_or_spec.endswith(".json") and Path(name_or_spec).is_file():
        return load_user_recognizer(Path(name_or_spec).resolve())
    return load_recognizer(name_or_spec)
