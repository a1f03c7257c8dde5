"""Uploaded photos: where they are, and deleting them once the last request that needs them is over.

A browser upload reaches a handler as Gradio's file payload (a dict with "path"), a gradio_client call
the same way, and a direct call (tests, scripts) as a path or an RGB array. Uploads are evidence: the
app keeps none beyond the requests that used them. Only files inside Gradio's upload folder are ever
deleted, and never an example (same bytes as a published example file), which is public.

Gradio stores uploads by content (`<upload folder>/<sha>/<name>`), so clients sending the same photo
share one file. The UploadLedger counts the requests holding each file, from the moment a request is
accepted into the queue to the end of its handler, and deletes the file when the count falls to zero.
"""
from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

from explainer.core.errors import ImageError
from explainer.faces import load_image

Upload = dict | str | Path | np.ndarray


class UploadMissing(ImageError):
    """The request named a photo that is no longer there (uploads are deleted after each request)."""


def upload_path(value: Upload | None) -> Path | None:
    """The file behind an upload, or None for an array (nothing on disk)."""
    if isinstance(value, dict):
        value = value.get("path")
    return Path(value) if isinstance(value, (str, Path)) else None


def _check_pixels(value: Upload, path: Path | None, max_pixels: int, role: str) -> None:
    """Refuse a photo above `max_pixels` from its header alone (the app's limit may be below the loader's)."""
    if path is not None:
        try:
            with Image.open(path) as image:
                width, height = image.size
        except Exception:  # noqa: BLE001 - not a picture PIL knows: the loader says why, plainly
            return
    elif isinstance(value, np.ndarray) and value.ndim >= 2:
        height, width = value.shape[:2]
    else:
        return
    if width * height > max_pixels:
        raise ImageError(f"The {role} is {width} x {height} pixels; this app takes at most {max_pixels:,} "
                         "pixels. Please send a smaller copy (a face photo needs far fewer).")


def read_photo(value: Upload | None, role: str, max_pixels: int | None = None) -> np.ndarray:
    """The uploaded photo as uint8 RGB [H, W, 3]; `role` ("probe photo") names it in error messages.
    `max_pixels`: the app's own limit (the loader's, MAX_PIXELS, applies anyway)."""
    if value is None or (isinstance(value, dict) and not value.get("path")):
        raise ImageError(f"No {role} was given: upload a photo (or pick an example) first.")
    path = upload_path(value)
    if path is not None and not path.is_file():
        raise UploadMissing(f"The {role} is no longer on the server: uploads are deleted after each "
                            "analysis, so please upload it again.")
    if max_pixels is not None:
        _check_pixels(value, path, max_pixels, role)
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


class UploadLedger:
    """Who still needs each upload; the last to let go deletes it (through `discard`).

    Two kinds of claim keep an upload: an upload not yet used by a request (`uploaded`, from the upload
    route: a browser user who has dropped a photo and not yet pressed Explain), and a request accepted
    into the queue (`hold`, which uses up one such upload claim). `release` at the end of the request,
    whatever happened, deletes the upload once no claim is left. An upload released without any claim
    (a direct call of a handler) is deleted at once, as before.

    Claims older than `max_age_s` no longer count: Gradio deletes any upload that old anyway, and it
    drops a waiting request whose client went away without running its handler (an orphaned hold).
    """

    def __init__(self, upload_folder: Path, keep_digests: frozenset[str] = frozenset(), max_age_s: float = 600.0) -> None:
        self.upload_folder = Path(upload_folder)
        self.keep_digests = keep_digests
        self.max_age_s = max_age_s
        self._unused: dict[Path, list[float]] = {}  # upload -> when each not-yet-used copy arrived
        self._holds: dict[Path, list[float]] = {}   # upload -> when each request holding it was accepted
        self._lock = threading.Lock()

    def _key(self, value: Upload | str | None) -> Path | None:
        path = upload_path(value)
        if path is None:
            return None
        path = path.resolve()
        return path if self.upload_folder.resolve() in path.parents else None

    def _fresh(self, table: dict[Path, list[float]], key: Path) -> list[float]:
        claims = [t for t in table.get(key, []) if time.monotonic() - t < self.max_age_s]
        if claims:
            table[key] = claims
        else:
            table.pop(key, None)
        return claims

    def uploaded(self, paths: list[str]) -> None:
        """Gradio has just stored these uploads (one entry per uploaded file, repeats included)."""
        with self._lock:
            for path in paths:
                key = self._key(path)
                if key is not None:
                    self._unused.setdefault(key, []).append(time.monotonic())

    def hold(self, values: list[Upload | None]) -> None:
        """A request using `values` was accepted: keep them until it releases them."""
        with self._lock:
            for value in values:
                key = self._key(value)
                if key is None:
                    continue
                self._holds.setdefault(key, []).append(time.monotonic())
                unused = self._fresh(self._unused, key)
                if unused:
                    unused.pop(0)

    def claims(self, value: Upload) -> int:
        """Requests and unused uploads that still need this file."""
        key = self._key(value)
        with self._lock:
            return 0 if key is None else len(self._fresh(self._holds, key)) + len(self._fresh(self._unused, key))

    def release(self, values: list[Upload | None]) -> list[Path]:
        """Let go of one hold per value; delete the uploads nobody needs any more. Returns what was deleted."""
        unclaimed = []
        with self._lock:
            for value in values:
                key = self._key(value)
                holds = self._fresh(self._holds, key) if key is not None else []
                if holds:
                    holds.pop(0)
                if key is not None and (holds or self._fresh(self._unused, key)):
                    continue
                if key is not None:
                    self._holds.pop(key, None)
                unclaimed.append(value)  # discard() leaves anything outside the upload folder alone
            # Deleting under the lock: a request accepted meanwhile on the same file waits for it, then
            # finds the file gone (and is told plainly) rather than racing the unlink.
            return discard(unclaimed, self.upload_folder, self.keep_digests)


class UploadClaims:
    """ASGI middleware: tells the ledger about each file Gradio's upload route stores, before the client
    learns its path (so no request can finish and delete a shared file between the two)."""

    def __init__(self, app, ledger: UploadLedger) -> None:
        self.app = app
        self.ledger = ledger

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].endswith("/upload"):
            return await self.app(scope, receive, send)
        status, body = 0, []

        async def watch(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and status == 200:
                body.append(message.get("body", b""))
                if not message.get("more_body", False):
                    try:
                        paths = json.loads(b"".join(body))
                    except ValueError:
                        paths = []
                    if isinstance(paths, list):
                        self.ledger.uploaded([p for p in paths if isinstance(p, str)])
            await send(message)

        await self.app(scope, receive, watch)
