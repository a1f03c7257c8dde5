"""Packs on disk: `$FACEXPLAIN_PACKS` (default `$FACEXPLAIN_HOME/packs`) / NAME / pack.json and its files.

A user's pack folder holds:
  pack.json        this manifest: kind ("user" | "paper"), status, decoder, training config, file hashes
  recognizer.json  the recognizer (explainer.packs.user_recognizers): file, sha256, crop, metric, threshold
  recognizer.*     the user's recognizer file, copied in (a "paper" pack points at the user's folder instead)
  transformer.pt   the trained latent space transformer (a "paper" pack uses the paper's own mapper)
  card.md          the model card: what it is, calibration, training, recovery figures
  train/           the trainer's resumable output while the pack is being made

Only packs whose status is "ready" are listed and loaded; `facexplain pack create` resumes the others.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from explainer.assets.store import home
from explainer.core.errors import InvalidSetting

MANIFEST = "pack.json"
READY = "ready"
DEFAULT_CONFIG = "offline-mobilefacenet"  # `pack create`'s training config: the offline recipe without dlib's landmark term
MIN_AUC = 0.9  # `pack create` refuses a recognizer below this AUC on the offline pairs: it does not separate people
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


def packs_dir() -> Path:
    override = os.environ.get("FACEXPLAIN_PACKS")
    return Path(override) if override else home() / "packs"


@dataclass
class PackManifest:
    name: str
    kind: str  # "user": our transformer trained for the user's recognizer; "paper": the paper's own checkpoints
    description: str
    decoder: str  # a DECODERS name ("user"), or "paper-stylegan2-256"
    training_config: str  # the trainer config the transformer came from ("" for "paper")
    status: str = "creating"  # "creating" -> "training" -> "benchmarking" -> "ready"
    recognizer: str = "recognizer.json"
    transformer: str = "transformer.pt"
    card: str = "card.md"
    # "paper" packs: the user's checkpoint folder and which face backbone ("r50" | "mb").
    paper_directory: str | None = None
    paper_backbone: str | None = None
    files_sha256: dict[str, str] = field(default_factory=dict)  # file (relative or absolute) -> sha256
    calibration: dict = field(default_factory=dict)  # threshold, AUC, pair counts
    recovery: dict = field(default_factory=dict)  # the short bench recover's headline figures

    def as_json(self) -> dict:
        return asdict(self)


def pack_dir(name: str) -> Path:
    return packs_dir() / name


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name or ""):
        raise InvalidSetting(f"pack name {name!r}: use lower-case letters, digits, '.', '_' and '-' (at most 63)")
    return name


def write_manifest(manifest: PackManifest) -> Path:
    directory = pack_dir(manifest.name)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / MANIFEST
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(manifest.as_json(), indent=2, sort_keys=True) + "\n")
    partial.replace(path)  # a reader never sees half a manifest
    return path


def read_manifest(name: str) -> PackManifest | None:
    path = pack_dir(name) / MANIFEST
    if not path.is_file():
        return None
    return PackManifest(**json.loads(path.read_text()))


def user_packs(include_unfinished: bool = False) -> list[PackManifest]:
    """The manifests of the packs on disk (ready ones only, unless asked), by name."""
    root = packs_dir()
    if not root.is_dir():
        return []
    found = []
    for path in sorted(root.glob(f"*/{MANIFEST}")):
        try:
            manifest = PackManifest(**json.loads(path.read_text()))
        except (ValueError, TypeError):
            continue  # a damaged or foreign folder is not a pack
        if manifest.name == path.parent.name and (include_unfinished or manifest.status == READY):
            found.append(manifest)
    return found
