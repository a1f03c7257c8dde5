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
from explainer.assets.datasets import DATA_SETS, DataError, data_paths
from explainer.core.errors import FacexplainError
from explainer.core.runtime import Progress, report_progress, single_thread
from explainer.generation.recovery_rule import recovery_rule
from explainer.jobs import shards
from explainer.jobs.explain import ExplanationError, attributes_provenance, resolve_pack
from explainer.jobs.results import ModelComparison, ModelReport
from explainer.measures import MIEstimate, mutual_information
from explainer.reports.provenance import library_versions, pack_provenance

MIN_MI_SAMPLES = 12  # fewer jointly valid faces than this: no MI estimate for the attribute
# Continuous attributes are compared at a resolution of this fraction of their spread over the real
# photos (measures.mutual_information's `resolution`): k-NN MI is scale-free, and without a resolution
# recovered faces that are all but identical (a randomised recognizer's: 0.2 % pixel spread) still
# "keep" an attribute through variations a hundred times below a visible change.
RESOLUTION = 0.05
# Photos per unit of work: each chunk is detected, estimated and recovered as one batch, the same way in
# any process, so results do not depend on how many processes share the work (explainer.jobs.shards).
CHUNK = 8  # small enough to balance ranks (40 photos: 5 units), large enough to batch the networks


@dataclass
class _Photos:
    """The usable photos of a data set, in path order: their ATTRIBUTE_CROP attributes and, per pack,
    the attributes of the faces recovered from them."""

    paths: list[Path]
    attributes: dict[str, tuple[np.ndarray, np.ndarray]]
    recovered: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]
    skipped: list[str]
    n_images: int
    digest: str


@dataclass
class _Chunk:
    """What one unit of work (a chunk of photos) yields."""

    paths: list[Path]
    skipped: list[str]
    attributes: dict[str, tuple[np.ndarray, np.ndarray]]
    recovered: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]


def _faces(paths: list[Path]) -> tuple[list[np.ndarray], list, list[Path], list[str]]:
    images, landmarks, kept, skipped = [], [], [], []
    for path in paths:
        try:
            image = faces.load_image(path)
            face = faces.find_face(image)
        except FacexplainError as error:
            skipped.append(f"{path.name}: {type(error).__name__}")
            continue
        images.append(image)
        landmarks.append(face.landmarks)
        kept.append(path)
    return images, landmarks, kept, skipped


def _recovered_attributes(pack, images: list[np.ndarray], landmarks: list, refine_steps: int) -> dict:
    from explainer import attributes

    recognizer = pack.recognizer
    crops = faces.to_tensor(np.stack([faces.align(i, lm, recognizer.crop) for i, lm in zip(images, landmarks)]))
    with torch.no_grad():
        embeddings = torch.cat([recognizer(crops[k:k + 32]) for k in range(0, len(crops), 32)])
    recovery = pack.recover(embeddings, recovery_rule(refine_steps))  # 0: feed-forward
    return attributes.estimate_all(attributes.crops_from_decoder(recovery.images, pack.decoder))


def _concatenate(parts: list[dict[str, tuple[np.ndarray, np.ndarray]]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {name: (np.concatenate([p[name][0] for p in parts]), np.concatenate([p[name][1] for p in parts]))
            for name in parts[0]}


def _process(data, packs: list, refine_steps: int, chunk: int, progress: Progress,
             span: tuple[float, float]) -> _Photos:
    """Every photo of `data`: find the face, estimate its attributes, recover it with each pack and
    estimate the recovered face's. Chunks of `chunk` photos are the units shards.map_units spreads over
    torchrun's processes; each chunk is processed the same way in any process, so the gathered result
    is the single-process one, bit for bit."""
    import hashlib

    from explainer import attributes

    if chunk < 1:
        raise ExplanationError(f"chunk must be at least 1 photo, got {chunk}")
    try:
        paths = data_paths(data) if isinstance(data, str) else [Path(p) for p in data]
    except DataError as error:
        raise ExplanationError(str(error)) from None
    digest = hashlib.sha256()
    for path in paths:
        digest.update(faces.sha256_of(path).encode())
    chunks = [paths[k:k + chunk] for k in range(0, len(paths), chunk)]
    mine = shards.mine(len(chunks))

    def work(index: int, chunk_paths: list[Path]) -> _Chunk:
        with single_thread():
            images, landmarks, kept, skipped = _faces(chunk_paths)
            if not images:
                return _Chunk(kept, skipped, {}, {})
            crops = np.stack([faces.align(i, lm, attributes.ATTRIBUTE_CROP) for i, lm in zip(images, landmarks)])
            found = attributes.estimate_all(faces.to_tensor(crops))
            recovered = {pack.name: _recovered_attributes(pack, images, landmarks, refine_steps) for pack in packs}
        done = mine.index(index) + 1
        report_progress(progress, span[0] + (span[1] - span[0]) * done / len(mine), "photos and recoveries")
        return _Chunk(kept, skipped, found, recovered)

    parts = shards.map_units(chunks, work)
    used = [part for part in parts if part.paths]
    n_faces = sum(len(part.paths) for part in used)
    if n_faces < MIN_MI_SAMPLES:
        raise ExplanationError(f"only {n_faces} of {len(paths)} photos have a usable face; "
                               f"mutual information needs at least {MIN_MI_SAMPLES}")
    return _Photos(paths=[p for part in used for p in part.paths],
                   attributes=_concatenate([part.attributes for part in used]),
                   recovered={pack.name: _concatenate([part.recovered[pack.name] for part in used]) for pack in packs},
                   skipped=[s for part in parts for s in part.skipped], n_images=len(paths),
                   digest=digest.hexdigest())


def _codes(values: np.ndarray) -> np.ndarray:
    """Class labels of categorical estimates (class probabilities [N, C], or one probability [N, 1])."""
    return values.argmax(axis=1) if values.shape[1] > 1 else (values[:, 0] >= 0.5).astype(np.int64)


def _analyze(pack, photos: _Photos, data_name: str, seed: int, refine_steps: int, n_boot: int, chunk: int,
             progress: Progress, span: tuple[float, float]) -> ModelReport:
    from explainer import attributes

    start = time.perf_counter()
    recovered = photos.recovered[pack.name]
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
        report_progress(progress, span[0] + (index + 1) / len(estimators) * (span[1] - span[0]),
                        f"{pack.name}: mutual information")
    if photos.skipped:
        notes.append(f"{len(photos.skipped)} photos without a usable face were left out: " + "; ".join(photos.skipped))
    provenance = {"data": {"name": data_name, "files_sha256": photos.digest, "n_images": photos.n_images},
                  "attributes": attributes_provenance(groups),
                  "pack": pack_provenance(pack),
                  "parameters": {"seed": seed, "refine_steps": refine_steps, "n_boot": n_boot, "k": 3, "chunk": chunk,
                                 "resolution": f"{RESOLUTION} x the attribute's std over the photos",
                                 "confidence": 0.95, "min_samples": MIN_MI_SAMPLES,
                                 "categorical_labels": "argmax of class probabilities (threshold 0.5 for one)"},
                  "versions": library_versions()}
    return ModelReport(pack=pack.name, data=data_name, n_images=photos.n_images, n_faces=len(photos.paths), mi=mi,
                       groups=groups, kinds=kinds, notes=notes, provenance=provenance,
                       seconds={"analyze": time.perf_counter() - start})


def _data_name(data) -> str:
    if isinstance(data, str):
        return data if data in DATA_SETS else Path(data).name
    return f"{len(data)} listed photos"


def analyze_model(pack, data="orl", seed: int = 0, progress: Progress = None, *, refine_steps: int = 0,
                  n_boot: int = 200, chunk: int = CHUNK) -> ModelReport | None:
    """I(a; â) per attribute of `pack` over the photos of `data` (a data set name or a folder).

    refine_steps=0 (default): feed-forward recovery G(T(z)), the paper's model-level setting and cheap
    enough for hundreds of photos. Under torchrun the photos are shared out over the processes
    (explainer.jobs.shards); rank 0 returns the report, the other ranks None.
    """
    start = time.perf_counter()
    pack = resolve_pack(pack)
    photos = _process(data, [pack], refine_steps, chunk, progress, (0.0, 0.85))
    if not shards.is_main():
        return None
    report = _analyze(pack, photos, _data_name(data), seed, refine_steps, n_boot, chunk, progress, (0.85, 1.0))
    elapsed = time.perf_counter() - start
    report.seconds = {"total": elapsed, "images_per_second": photos.n_images / elapsed}
    return report


def compare_models(packs: Sequence, data="orl", seed: int = 0, progress: Progress = None, *, refine_steps: int = 0,
                   n_boot: int = 200, chunk: int = CHUNK) -> ModelComparison | None:
    """analyze_model for each pack on the same photos (their attributes estimated once). Under torchrun,
    rank 0 returns the comparison and the other ranks None."""
    packs = [resolve_pack(p) for p in packs]
    if len(packs) < 2:
        raise ExplanationError("compare needs at least two packs")
    photos = _process(data, packs, refine_steps, chunk, progress, (0.0, 0.85))
    if not shards.is_main():
        return None
    reports = {}
    share = 0.15 / len(packs)
    for k, pack in enumerate(packs):
        span = (0.85 + k * share, 0.85 + (k + 1) * share)
        reports[pack.name] = _analyze(pack, photos, _data_name(data), seed, refine_steps, n_boot, chunk, progress, span)
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
    from explainer.packs.catalogue import Pack

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
