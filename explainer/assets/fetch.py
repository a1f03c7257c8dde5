"""Download registry packages by name and version, verify them, and unpack our assets into the cache.

Idempotent: an asset with its completion marker is skipped, and a verified archive in
`$FACEXPLAIN_HOME/downloads` is reused, so a second run downloads and unpacks nothing.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

try:
    import fcntl
except ImportError:  # Windows: fetches are not serialised (run one at a time)
    fcntl = None

from explainer.assets.catalogue import ASSETS, VIDEO_FRAMES, Asset, Package, get
from explainer.assets.store import MARKER, asset_dir, home, is_present
from explainer.core.errors import FacexplainError


class FetchError(FacexplainError):
    """A package could not be downloaded or did not verify."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_stamp(path: Path) -> tuple[int, int] | None:
    """(mtime in ns, size) of a file, None when there is none: what tells a cache that a file was written
    again (a pack made again under its old name while the app runs)."""
    try:
        status = Path(path).stat()
    except FileNotFoundError:
        return None
    return status.st_mtime_ns, status.st_size


def cached_sha256(path: Path) -> str:
    """sha256_file, remembered per (path, mtime, size): weight files are hashed once, and again when rewritten."""
    path = Path(path).resolve()
    return _sha256_of_version(path, file_stamp(path))


@functools.lru_cache(maxsize=256)
def _sha256_of_version(path: Path, stamp: tuple[int, int] | None) -> str:
    return sha256_file(path)


# -- downloading -----------------------------------------------------------------------------------
def _download(package: Package, dest: Path) -> Path:
    """Fetch the package archive with the registry's own client into `dest`; return its path."""
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        if package.registry == "pypi":
            kind = "--no-binary=:all:" if package.sdist else "--only-binary=:all:"
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", kind,
                   "--disable-pip-version-check", "--quiet", "--dest", tmp, package.spec]
        elif package.registry == "npm":
            cmd = ["npm", "pack", package.spec, "--pack-destination", tmp, "--silent"]
        else:
            raise FetchError(f"{package.name}: registry {package.registry!r} is not downloadable")
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        except FileNotFoundError as err:
            raise FetchError(f"{package.spec}: `{cmd[0]}` is not installed ({err})") from err
        files = list(Path(tmp).iterdir())
        if done.returncode != 0 or len(files) != 1:
            raise FetchError(f"`{' '.join(cmd)}` failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}")
        target = dest / files[0].name
        shutil.move(files[0], target)
        return target


def archive_for(package: Package) -> Path:
    """The verified archive of `package`, downloaded once into the cache."""
    downloads = home() / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    index = downloads / f"{package.registry}-{package.name}-{package.version}.path"
    if index.is_file():
        cached = downloads / index.read_text().strip()
        if cached.is_file() and sha256_file(cached) == package.sha256:
            return cached
    archive = _download(package, downloads)
    actual = sha256_file(archive)
    if actual != package.sha256:
        archive.unlink()
        raise FetchError(f"{package.spec}: sha256 {actual} does not match the pinned {package.sha256}")
    index.write_text(archive.name)
    return archive


# -- reading archives ------------------------------------------------------------------------------
def _members(archive: Path) -> Iterator[tuple[str, Callable[[], bytes]]]:
    """(name, read-bytes function) for every regular file in a wheel/zip or a .tgz."""
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                if not info.is_dir():
                    yield info.filename, (lambda info=info: z.read(info))
    else:
        with tarfile.open(archive, "r:gz") as t:
            for info in t:
                if info.isfile():
                    yield info.name, (lambda info=info: t.extractfile(info).read())


def _safe_relative(name: str, prefix: str) -> PurePosixPath | None:
    """`name` relative to `prefix`, or None if outside it; refuses absolute or '..' paths."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts:
        return None
    try:
        return path.relative_to(prefix)
    except ValueError:
        return None


def _extract(archive: Path, prefix: str, dest: Path) -> list[Path]:
    written = []
    for name, read in _members(archive):
        rel = _safe_relative(name, prefix)
        if rel is None:
            continue
        target = dest / rel if str(rel) != "." else dest / PurePosixPath(name).name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(read())
        written.append(target)
    if not written:
        raise FetchError(f"{archive.name} has no member {prefix!r}")
    return written


# -- per-kind unpacking ----------------------------------------------------------------------------
def _installed_file(asset: Asset) -> Path:
    top = asset.member.split("/")[0]
    spec = importlib.util.find_spec(top)
    if spec is None or not spec.submodule_search_locations:
        raise FetchError(f"{asset.name}: package {asset.package.name} is not installed (pip install {asset.package.spec})")
    path = Path(list(spec.submodule_search_locations)[0]).parent / asset.member
    if not path.is_file():
        raise FetchError(f"{asset.name}: {path} not found in the installed {asset.package.name}")
    return path


def _unpack_file(asset: Asset, staging: Path) -> None:
    name = asset.filename or PurePosixPath(asset.member).name
    if asset.package.registry == "installed":
        shutil.copyfile(_installed_file(asset), staging / name)
    else:
        (extracted,) = _extract(archive_for(asset.package), asset.member, staging)
        extracted.rename(staging / name)
    actual = sha256_file(staging / name)
    if actual != asset.sha256:
        raise FetchError(f"{asset.name}: sha256 {actual} does not match the pinned {asset.sha256}")


def _unpack_tree(asset: Asset, staging: Path) -> None:
    _extract(archive_for(asset.package), asset.member, staging / "data")


def _unpack_video_frames(asset: Asset, staging: Path) -> None:
    import cv2

    archive = archive_for(asset.package)
    with tempfile.TemporaryDirectory() as tmp:
        for identity, videos in VIDEO_FRAMES.items():
            out = staging / "data" / identity
            out.mkdir(parents=True, exist_ok=True)
            for member, digest, n_frames in videos:
                (video,) = _extract(archive, f"{asset.member}/{member}", Path(tmp))
                if sha256_file(video) != digest:
                    raise FetchError(f"{asset.name}: {member} does not match its pinned sha256")
                capture = cv2.VideoCapture(str(video))
                total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
                wanted = {round(i * (total - 1) / (n_frames - 1)) for i in range(n_frames)}
                # Read sequentially: seeking in compressed video is not frame-exact on every build.
                index, saved = 0, 0
                while saved < len(wanted):
                    ok, frame = capture.read()
                    if not ok:
                        break
                    if index in wanted:
                        cv2.imwrite(str(out / f"{Path(member).stem}_{index:05d}.png"), frame)
                        saved += 1
                    index += 1
                capture.release()
                if saved != len(wanted):
                    raise FetchError(f"{asset.name}: decoded {saved} of {len(wanted)} frames of {member}")


_UNPACK = {"file": _unpack_file, "tree": _unpack_tree, "video_frames": _unpack_video_frames}


@contextmanager
def _exclusive(lock_path: Path):
    """One fetch of an asset at a time (across processes): a second waits, then finds it present."""
    with open(lock_path, "a") as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def fetch_one(name: str, force: bool = False) -> bool:
    """Fetch one asset; True if work was done, False if it was already present.

    Everything is built in a staging folder renamed into place once verified, so an interrupted fetch
    (even a killed one) never looks present; the next fetch deletes its staging folder and starts again."""
    asset = get(name)
    if is_present(name) and not force:
        return False
    final = asset_dir(name)
    final.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(final.parent / f".{name}.lock"):
        if is_present(name) and not force:
            return False  # another process fetched it while this one waited
        for stale in final.parent.glob(f".{name}.staging-*"):
            shutil.rmtree(stale, ignore_errors=True)  # left by an interrupted fetch
        _fetch_into(asset, final)
    return True


def _fetch_into(asset: Asset, final: Path) -> None:
    name = asset.name
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.staging-", dir=final.parent))
    try:
        _UNPACK[asset.kind](asset, staging)
        files = {str(p.relative_to(staging)): sha256_file(p) for p in sorted(staging.rglob("*")) if p.is_file()}
        (staging / MARKER).write_text(json.dumps({
            "asset": name, "package": asset.package.spec, "registry": asset.package.registry,
            "package_sha256": asset.package.sha256, "licence": asset.licence, "files": files,
        }, indent=1, sort_keys=True))
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)  # atomic: a half-done fetch never looks present
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def fetch(names: Iterable[str] | None = None, force: bool = False, log=print) -> list[str]:
    """Fetch the named assets (all by default); return the names that needed work."""
    from tqdm import tqdm

    wanted = list(names) if names else list(ASSETS)
    for name in wanted:
        get(name)
    done = []
    for name in tqdm(wanted, desc="assets", unit="asset", disable=None):  # None: only on a terminal
        if fetch_one(name, force=force):
            done.append(name)
            log(f"fetched {name}")
    return done


__all__ = ["FetchError", "archive_for", "fetch", "fetch_one", "sha256_file"]
