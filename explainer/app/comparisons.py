"""Model comparisons over offline data sets, computed once and kept: in memory, and on disk in the cache.

A comparison over the 100 held-out ORL photos takes minutes on a CPU, and its inputs never change
between runs of the app, so the result is stored as its canonical JSON under a key that changes with
anything it depends on: the packs' weight hashes, the data files, the seed, library versions and
facexplain's own source code. A stale result is never read; an old one is simply never asked for.

Each file starts with a line `sha256:<hex>` of the JSON below it. A file that does not match it (a disk
error, a crash mid-write on a file system without atomic rename, a hand edit) is deleted and the result
computed again: a damaged comparison is never shown.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from pathlib import Path

from explainer import assets, faces
from explainer.jobs import pipeline
from explainer.jobs.analysis_data import synthetic_count

EXPLAINER_DIR = Path(__file__).resolve().parents[1]
_HEADER = "sha256:"
log = logging.getLogger(__name__)
_MEMORY: dict[str, pipeline.ModelComparison] = {}


def _source_digest() -> str:
    """sha256 over facexplain's library sources (not the app's own): a change to any estimator or measure
    retires old results."""
    digest = hashlib.sha256()
    app_dir = Path(__file__).resolve().parent
    for path in sorted(p for p in EXPLAINER_DIR.rglob("*.py") if app_dir not in p.parents):
        digest.update(str(path.relative_to(EXPLAINER_DIR)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def cache_key(packs: tuple[str, ...], data: str, seed: int) -> str:
    from explainer.packs.catalogue import load_pack
    from explainer.reports.provenance import library_versions, pack_provenance

    identity = {"packs": [pack_provenance(load_pack(p)) for p in packs], "data": data, "seed": seed,
                "files": [] if synthetic_count(data) else [faces.sha256_of(p) for p in pipeline.data_paths(data)],
                "versions": library_versions(), "source": _source_digest()}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def from_dict(payload: dict) -> pipeline.ModelComparison:
    """A ModelComparison back from its as_dict() (derived fields such as rankings are recomputed)."""
    fields = {f.name for f in dataclasses.fields(pipeline.ModelReport)}
    # Canonical JSON sorts object keys; the attributes' own order (the estimators') survives in "table".
    order = [row["attribute"] for row in payload["table"]]
    reports = {}
    for pack, report in payload["reports"].items():
        report = {k: v for k, v in report.items() if k in fields}
        for key in ("mi", "groups", "kinds"):
            report[key] = {name: report[key][name] for name in order if name in report[key]}
        reports[pack] = pipeline.ModelReport(**report)
    return pipeline.ModelComparison(list(payload["packs"]), payload["data"], reports)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_suffix(".tmp")
    staging.write_text(f"{_HEADER}{hashlib.sha256(text.encode()).hexdigest()}\n{text}")
    staging.replace(path)  # atomic: a crash never leaves half a result to be read later


def _read(path: Path) -> pipeline.ModelComparison | None:
    """The stored comparison, or None (and the file deleted) when it does not match its digest."""
    header, _, text = path.read_text().partition("\n")
    if header == _HEADER + hashlib.sha256(text.encode()).hexdigest():
        try:
            return from_dict(json.loads(text))
        except (ValueError, KeyError, TypeError) as error:  # right digest, wrong content: an old format
            log.warning("comparison cache %s unreadable (%s): computing it again", path.name, error)
    else:
        log.warning("comparison cache %s does not match its sha256: computing it again", path.name)
    path.unlink(missing_ok=True)
    return None


def comparison(packs: tuple[str, ...], data: str, seed: int = 0, progress=None,
               folder: Path | None = None) -> pipeline.ModelComparison:
    """compare_models(packs, data, seed), from memory or the disk cache when it was computed before."""
    key = cache_key(packs, data, seed)
    if key in _MEMORY:
        return _MEMORY[key]
    # A folder of its own: files of the format without a digest (app/comparisons) are left to older checkouts.
    path = (folder or assets.home() / "app" / "comparisons-sha256") / f"{key}.json"
    result = _read(path) if path.is_file() else None
    if result is None:
        result = pipeline.compare_models(list(packs), data=data, seed=seed, progress=progress)
        _write(path, result.to_json())
    _MEMORY[key] = result
    return result
