"""Where fetched assets live: `$FACEXPLAIN_HOME/assets/<name>/`, default `~/.cache/facexplain`.

A finished asset has a `.complete.json` beside its files (written last, after verification), so an
interrupted fetch never looks present.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from explainer.assets.catalogue import get
from explainer.core.errors import FacexplainError

MARKER = ".complete.json"


class AssetMissing(FacexplainError, FileNotFoundError):
    """An asset has not been fetched; the message names the command that fetches it."""


def home() -> Path:
    return Path(os.environ.get("FACEXPLAIN_HOME", Path.home() / ".cache" / "facexplain")).expanduser()


def asset_dir(name: str) -> Path:
    get(name)  # unknown names fail here, with the list of known ones
    return home() / "assets" / name


def is_present(name: str) -> bool:
    return (asset_dir(name) / MARKER).is_file()


def record(name: str) -> dict:
    """What the fetch recorded for a present asset (package, sha256, files)."""
    return json.loads((asset_dir(name) / MARKER).read_text())


def path(name: str) -> Path:
    """The fetched artefact: the file for kind "file", the folder for data sets."""
    asset = get(name)
    if not is_present(name):
        raise AssetMissing(
            f"asset {name!r} ({asset.description}) is not in {home() / 'assets'}; "
            f"fetch it with `facexplain assets fetch --only {name}` (or `make assets`)")
    folder = asset_dir(name)
    if asset.kind == "file":
        return folder / (asset.filename or Path(asset.member).name)
    return folder / "data"
