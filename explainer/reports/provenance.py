"""Provenance of a result: which inputs, which weights, which parameters, which library versions.

Nothing here depends on time or place (no timestamps, no absolute paths), so the same inputs give the
same provenance, byte for byte.
"""
from __future__ import annotations

import functools
import importlib.metadata
import platform

from explainer.assets.fetch import cached_sha256

LIBRARIES = ("facexplain", "torch", "numpy", "scipy", "plotly", "opencv-python-headless",
             "dlib-bin", "onnxruntime", "scikit-image", "lir", "fpdf2")


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


# Weight files are hashed once per version (path, mtime, size): a pack made again is hashed again.
file_sha256 = cached_sha256


def _asset_hashes(asset: str) -> dict[str, str]:
    from explainer.assets.store import record

    return dict(sorted(record(asset)["files"].items()))


def recognizer_provenance(recognizer) -> dict:
    """A recognizer's name, weight hashes, metric and threshold, read off the loaded object (a registry
    name is still accepted, and loaded, for older callers)."""
    from explainer.recognition.registry import RECOGNIZERS, load_recognizer

    model = load_recognizer(recognizer) if isinstance(recognizer, str) else recognizer
    threshold = model.threshold
    # A user's recognizer (a pack on disk) carries the hash of its own file.
    weights = getattr(model, "weights_sha256", None) or _asset_hashes(RECOGNIZERS[model.name].asset)
    return {"name": model.name, "weights_sha256": weights,
            "metric": model.metric.name, "threshold": threshold.value, "threshold_fmr": threshold.fmr,
            "threshold_source": threshold.source}


def pack_provenance(pack) -> dict:
    """Pack name, its recognizer / decoder / transformer and their weight hashes (from `pack.spec`, the
    registered pack it was loaded from; a pack assembled by hand has no files to hash)."""
    spec = pack.spec
    info = {"name": pack.name, "recognizer": pack.recognizer.name, "decoder": pack.decoder.name}
    if spec is None:  # an ad-hoc pack (e.g. the randomised-model sanity check): no files to hash
        info["note"] = "not a registered pack; weights not from files"
        return info
    info["recognizer_weights_sha256"] = recognizer_provenance(pack.recognizer)["weights_sha256"]
    if spec.directory is not None:  # a pack on disk: the hashes its manifest recorded when it was made
        from explainer.packs.store import read_manifest

        manifest = read_manifest(spec.name)
        info["files_sha256"] = dict(sorted(manifest.files_sha256.items()))
        if manifest.kind == "paper":  # the paper's decoder and mapper are in files_sha256
            return info
    info["decoder_weights_sha256"] = _asset_hashes(spec.decoder)
    info["transformer_sha256"] = {spec.transformer_path.name: file_sha256(spec.transformer_path)}
    return info
