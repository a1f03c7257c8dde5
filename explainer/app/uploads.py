"""Uploaded photos: where they are, and deleting them once a request is over.

A browser upload reaches a handler as Gradio's file payload (a dict with "path"), a gradio_client call
the same way, and a direct call (tests, scripts) as a path or an RGB array. Uploads are evidence: the
app keeps none beyond the request that used them. Only files inside Gradio's upload folder are ever
deleted, and never an example (same bytes as a published example file), which is public.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from explainer.errors import ImageError
from explainer.faces import load_image

Upload = dict | str | Path | np.ndarray


class UploadMissing(ImageError):
    """The request named a photo that is no longer there (uploads are deleted after each request)."""


def upload_path(value: Upload | None) -> Path | None:
    """The file behind an upload, or None for an array (nothing on disk)."""
    if isinstance(value, dict):
        value = value.get("path")
    return Path(value) if isinstance(value, (str, Path)) else None


def read_photo(value: Upload | None, role: str) -> np.ndarray:
    """The uploaded photo as uint8 RGB [H, W, 3]; `role` ("probe photo") names it in error messages."""
    if value is None or (isinstance(value, dict) and not value.get("path")):
        raise ImageError(f"No {role} was given: upload a photo (or pick an example) first.")
    path = upload_path(value)
    if path is not None and not path.is_file():
        raise UploadMissing(f"The {role} is no longer on the server: uploads are deleted after each "
                            "analysis, so please upload it again.")
    try:
        pixels = load_image(path if path is not None else value)
    except ImageError as error:
        raise ImageError(f"The {role} could not be used. {error}") from error
    assert pixels.ndim == 3 and pixels.shape[2] == 3 and pixels.dtype == np.uint8, pixels.shape
    return pixels


def discard(values: list[Upload | None], upload_folder: Path, keep_digests: frozenset[str] = frozenset()) -> list[Path]:
    """Delete the uploads among `values` (files inside `upload_folder` that are not examples); returns
    what was deleted. Gradio stores each upload in a folder of its own, removed too when left empty."""
    deleted = []
    root = upload_folder.resolve()
    for value in values:
        path = upload_path(value)
        if path is None or not path.is_file():
            continue
        path = path.resolve()
        if root not in path.parents:
            continue  # not an upload (a direct call with a data set file, say): never ours to delete
        if hashlib.sha256(path.read_bytes()).hexdigest() in keep_digests:
            continue
        path.unlink(missing_ok=True)
        deleted.append(path)
        if path.parent != root:
            try:
                path.parent.rmdir()  # only when empty; another upload may share the folder
            except OSError:
                pass
    return deleted
