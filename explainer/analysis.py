"""analyze_model and compare_models: what a model keeps of each attribute, I(a; â) over a data set.

    photos -> a = attributes of their ATTRIBUTE_CROP; â = attributes of their recovered faces;
    I(a; â) per attribute with an interval
compare_models(packs, data): analyze_model for each pack on the same photos, a computed once.
randomised_pack: the model-randomisation sanity check (Adebayo et al. 2018).
"""
from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from explainer import faces
from explainer.datasets import DATA_SETS, DataError, data_paths
from explainer.errors import FacexplainError
from explainer.explain import ExplanationError, attributes_provenance, resolve_pack
from explainer.generation.recoverer import RefineSettings
from explainer.measures import MIEstimate, mutual_information
from explainer.reports.provenance import library_versions, pack_provenance
from explainer.results import ModelComparison, ModelReport
from explainer.runtime import Progress, report_progress, single_thread

MIN_MI_SAMPLES = 12  # fewer jointly valid faces than this: no MI estimate for the attribute
# Continuous attributes are compared at a resolution of this fraction of their spread over the real
# photos (measures.mutual_information's `resolution`): k-NN MI is scale-free, and without a resolution
# recovered faces that are all but identical (a randomised recognizer's: 0.2 % pixel spread) still
# "keep" an attribute through variations a hundred times below a visible change.
RESOLUTION = 0.05


@dataclass
class _Photos:
    """The usable photos of a data set: their ATTRIBUTE_CROP attributes and landmarks, computed once."""

    paths: list[Path]
    images: list[np.ndarray]
    landmarks: list
    attributes: dict[str, tuple[np.ndarray, np.ndarray]]
    skipped: list[str]
    n_images: int
    digest: str


def _load_photos(data, progress: Progress, span: tuple[float, float]) -> _Photos:
    import hashlib

    from explainer import attributes

    try:
        paths = data_paths(data) if isinstance(data, str) else [Path(p) for p in data]
    except DataError as error:
        raise ExplanationError(str(error)) from None
    images, landmarks, kept, skipped = [], [], [], []
    digest = hashlib.sha256()
    for k, path in enumerate(paths):
        digest.update(faces.sha256_of(path).encode())
        try:
            image = faces.load_image(path)
            face = faces.find_face(image)
        except FacexplainError as error:
            skipped.append(f"{path.name}: {type(error).__name__}")
            continue
        images.append(image)
        landmarks.append(face.landmarks)
        kept.append(path)
        report_progress(progress, span[0] + (span[1] - span[0]) * 0.5 * (k + 1) / len(paths), "faces")
    if len(images) < MIN_MI_SAMPLES:
        raise ExplanationError(f"only {len(images)} of {len(paths)} photos have a usable face; "
                               f"mutual information needs at least {MIN_MI_SAMPLES}")
    crops = faces.to_tensor(np.stack([faces.align(i, lm, attributes.ATTRIBUTE_CROP) for i, lm in zip(images, landmarks)]))
    values = attributes.estimate_all(crops)
    report_progress(progress, span[1], "photo attributes")
    return _Photos(kept, images, landmarks, values, skipped, len(paths), digest.hexdigest())


def _codes(values: np.ndarray) -> np.ndarray:
    """Class labels of categorical estimates (class probabilities [N, C], or one probability [N, 1])."""
    return values.argmax(axis=1) if values.shape[1] > 1 else (values[:, 0] >= 0.5).astype(np.int64)


def _analyze(pack, photos: _Photos, data_name: str, seed: int, refine_steps: int, n_boot: int,
             progress: Progress, span: tuple[float, float]) -> ModelReport:
    from explainer import attributes

    start = time.perf_counter()
    recognizer = pack.recognizer
    with single_thread():
        crops = faces.to_tensor(np.stack([faces.align(i, lm, recognizer.crop) for i, lm in zip(photos.images, photos.landmarks)]))
        with torch.no_grad():
            embeddings = torch.cat([recognizer(crops[k:k + 32]) for k in range(0, len(crops), 32)])
        recovery = pack.recover(embeddings, RefineSettings(steps=refine_steps) if refine_steps > 0 else None)
        report_progress(progress, span[0] + 0.4 * (span[1] - span[0]), f"{pack.name}: recovery")
        recovered = attributes.estimate_all(attributes.crops_from_decoder(recovery.images, pack.decoder))
    report_progress(progress, span[0] + 0.7 * (span[1] - span[0]), f"{pack.name}: attributes")

    mi, groups, kinds, notes = {}, {}, {}, []
    estimators = attributes.estimators()
    for index, estimator in enumerate(estimators):
        name = estimator.name
        groups[name], kinds[name] = estimator.group, estimator.kind
        a, a_valid = photos.attributes[name]
        a_hat, a_hat_valid = recovered[name]
        both = a_valid & a_hat_valid
        if both.sum() < MIN_MI_SAMPLES:
            mi[name] = None
            notes.append(f"{name}: only {int(both.sum())} faces with valid estimates on both photo and recovery")
            continue
        a, a_hat = a[both], a_hat[both]
        if estimator.kind == "categorical":
            a, a_hat = _codes(a), _codes(a_hat)
        resolution = None if estimator.kind == "categorical" else RESOLUTION * a.std(axis=0)
        estimate: MIEstimate = mutual_information(a, a_hat, estimator.kind, n_boot=n_boot, seed=seed,
                                                  resolution=resolution)
        mi[name] = estimate.as_dict()
        report_progress(progress, span[0] + (0.7 + 0.3 * (index + 1) / len(estimators)) * (span[1] - span[0]),
                f"{pack.name}: mutual information")
    if photos.skipped:
        notes.append(f"{len(photos.skipped)} photos without a usable face were left out: " + "; ".join(photos.skipped))
    provenance = {"data": {"name": data_name, "files_sha256": photos.digest, "n_images": photos.n_images},
                  "attributes": attributes_provenance(groups),
                  "pack": pack_provenance(pack),
                  "parameters": {"seed": seed, "refine_steps": refine_steps, "n_boot": n_boot, "k": 3,
                                 "resolution": f"{RESOLUTION} x the attribute's std over the photos",
                                 "confidence": 0.95, "min_samples": MIN_MI_SAMPLES,
                                 "categorical_labels": "argmax of class probabilities (threshold 0.5 for one)"},
                  "versions": library_versions()}
    return ModelReport(pack=pack.name, data=data_name, n_images=photos.n_images, n_faces=len(photos.images), mi=mi,
                       groups=groups, kinds=kinds, notes=notes, provenance=provenance,
                       seconds={"analyze": time.perf_counter() - start})


def _data_name(data) -> str:
    if isinstance(data, str):
        return data if data in DATA_SETS else Path(data).name
    return f"{len(data)} listed photos"


def analyze_model(pack, data="orl", seed: int = 0, progress: Progress = None, *, refine_steps: int = 0,
                  n_boot: int = 200) -> ModelReport:
    """I(a; â) per attribute of `pack` over the photos of `data` (a data set name or a folder).

    refine_steps=0 (default): feed-forward recovery G(T(z)), the paper's model-level setting and cheap
    enough for hundreds of photos.
    """
    start = time.perf_counter()
    pack = resolve_pack(pack)
    with single_thread():
        photos = _load_photos(data, progress, (0.0, 0.4))
    report = _analyze(pack, photos, _data_name(data), seed, refine_steps, n_boot, progress, (0.4, 1.0))
    report.seconds = {"total": time.perf_counter() - start, "images_per_second": photos.n_images / (time.perf_counter() - start)}
    return report


def compare_models(packs: Sequence, data="orl", seed: int = 0, progress: Progress = None, *, refine_steps: int = 0,
                   n_boot: int = 200) -> ModelComparison:
    """analyze_model for each pack on the same photos (their attributes estimated once)."""
    packs = [resolve_pack(p) for p in packs]
    if len(packs) < 2:
        raise ExplanationError("compare needs at least two packs")
    with single_thread():
        photos = _load_photos(data, progress, (0.0, 0.3))
    reports = {}
    share = 0.7 / len(packs)
    for k, pack in enumerate(packs):
        span = (0.3 + k * share, 0.3 + (k + 1) * share)
        reports[pack.name] = _analyze(pack, photos, _data_name(data), seed, refine_steps, n_boot, progress, span)
    return ModelComparison([p.name for p in packs], _data_name(data), reports)


# -- the model-randomisation sanity check (Adebayo et al. 2018) ------------------------------------------
def randomised_pack(pack, seed: int = 0):
    """A copy of `pack` whose recognizer has every weight matrix / kernel re-drawn at random; transformer and
    decoder unchanged. An explanation method that reads the model must report clearly less attribute
    information for it.

    Each tensor is redrawn from a normal with the trained tensor's own mean and standard deviation: a
    plain Kaiming re-initialisation under the trained per-channel scales of dlib's ResNet overflows
    float32 within its 29 layers (embeddings of norm inf), which would make the check trivially pass.
    1-D parameters (biases, per-channel scales) and buffers are kept, as in Adebayo et al.'s weight
    re-initialisation."""
    from explainer.packs import Pack

    pack = resolve_pack(pack)
    recognizer = copy.deepcopy(pack.recognizer)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in sorted(recognizer.named_parameters()):
            if parameter.ndim >= 2:
                mean, std = parameter.mean(), parameter.std()
                parameter.copy_(mean + std * torch.randn(parameter.shape, generator=generator))
    recognizer.threshold = pack.recognizer.threshold
    return Pack(f"{pack.name}+random-F", recognizer, pack.decoder, pack.transformer, {"note": "randomised recognizer"})
