"""Packs from users' own models: `facexplain pack create` (ONNX, checkpoints, the paper's folder,
insightface's layout), `pack list`, loading and explaining with them, and the errors for bad models.

Each test has its own packs folder ($FACEXPLAIN_PACKS) and its own pack names (load_pack caches by name).
Creation runs with `--config cpu-tiny`: a small calibration set, 2 training steps, 2 benchmark faces.
"""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from compat_manifests import manifest, random_state
from pack_helpers import conv_onnx, faceplugin_onnx

from explainer import cli
from explainer.core.registry import UnknownName
from explainer.packs.calibration import ModelDoesNotSeparate
from explainer.packs.catalogue import load_pack, pack_names
from explainer.packs.create import (
    INSIGHTFACE_LICENCE,
    InsightfaceUnavailable,
    PackExists,
    create_insightface_pack,
    create_pack,
    create_paper_packs,
)
from explainer.packs.store import READY, read_manifest, user_packs
from explainer.packs.user_recognizers import RecognizerFileError
from explainer.recognition.registry import CROP_NAMES, RECOGNIZERS, crop_spec, default_surrogate, reference_runtime


@pytest.fixture()
def packs_home(tmp_path, monkeypatch, single_thread):
    folder = tmp_path / "packs"
    monkeypatch.setenv("FACEXPLAIN_PACKS", str(folder))
    return folder


def _orl_pair():
    from explainer.assets import datasets

    people = datasets.orl((31,))
    return str(people[0].path), str(people[1].path)


# -- one registry entry per built-in recognizer ---------------------------------------------------------

def test_registry_entries_declare_crop_metric_surrogate_and_reference():
    for name, entry in RECOGNIZERS.items():
        assert entry.crop in CROP_NAMES and entry.metric in ("cosine", "euclidean"), name
        assert entry.surrogate in RECOGNIZERS and entry.surrogate != name, name
        function, description = reference_runtime(name)
        assert callable(function) and description, name
    assert default_surrogate("dlib-resnet") == "mobilefacenet"
    assert default_surrogate("someones-own-model") == "dlib-resnet"  # users' recognizers have no entry
    with pytest.raises(ValueError, match="known: arcface112, dlib150"):
        crop_spec("square")


# -- a pack from any ONNX recognizer ------------------------------------------------------------------

def test_pack_from_an_onnx_file_is_listed_loaded_and_explains(packs_home, capsys, tmp_path):
    onnx_file = faceplugin_onnx()
    assert cli.main(["pack", "create", "onnx-mine", "--recognizer", str(onnx_file), "--config", "cpu-tiny"]) == 0
    folder = packs_home / "onnx-mine"
    made = read_manifest("onnx-mine")
    assert made.status == READY and made.kind == "user" and made.decoder == "dcgan-digiface"
    assert {"recognizer.onnx", "transformer.pt"} <= set(made.files_sha256)
    assert made.calibration["auc"] > 0.99 and made.calibration["n_impostor"] >= 700
    assert made.recovery["n"] == 2 and (folder / "card.md").read_text().startswith("# Pack `onnx-mine`")
    # Pack list, as JSON: built-in packs first, then this one with its calibrated threshold.
    capsys.readouterr()
    assert cli.main(["pack", "list", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)["packs"]}
    assert rows["onnx-mine"]["source"] == "user" and rows["onnx-mine"]["threshold"] == made.calibration["value"]
    assert "dlib-dcgan" in rows and pack_names()[-1] == "onnx-mine"

    pack = load_pack("onnx-mine")
    assert pack.recognizer.name == "onnx-mine" and pack.recognizer.embedding_dim == 512
    assert pack.recognizer.threshold.value == made.calibration["value"]
    assert "pack create" in pack.recognizer.threshold.source

    probe, reference = _orl_pair()
    out = tmp_path / "explained"
    assert cli.main(["explain", probe, reference, "--pack", "onnx-mine", "--out", str(out), "--members", "1"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["decision"]["recognizer"] == "onnx-mine" and report["decision"]["match"] is True
    assert report["provenance"]["pack"]["files_sha256"]["recognizer.onnx"] == made.files_sha256["recognizer.onnx"]

    # Interrupted after calibration: the same command resumes (no new calibration, training continues from
    # its checkpoint, which already holds both steps).
    steps_before = (folder / "train" / "stats.jsonl").read_text()
    interrupted = read_manifest("onnx-mine")
    interrupted.status = "training"
    from explainer.packs.store import write_manifest

    write_manifest(interrupted)
    (folder / "transformer.pt").unlink()
    said = []
    create_pack("onnx-mine", onnx_file, config="cpu-tiny", log=said.append)
    assert said[0] == "resuming pack 'onnx-mine' (stage: training)" and not any("calibrated" in s for s in said)
    assert read_manifest("onnx-mine").status == READY and (folder / "transformer.pt").is_file()
    assert (folder / "train" / "stats.jsonl").read_text() == steps_before

    # The same name again is refused, and so is a built-in pack's name.
    with pytest.raises(PackExists, match="exists already"):
        create_pack("onnx-mine", onnx_file, config="cpu-tiny")
    with pytest.raises(PackExists, match="built-in"):
        create_pack("dlib-dcgan", onnx_file, config="cpu-tiny")
    # A changed recognizer file is noticed before it is used.
    load_pack.cache_clear()
    from explainer.packs.user_recognizers import load_user_recognizer

    load_user_recognizer.cache_clear()
    with open(folder / "recognizer.onnx", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(RecognizerFileError, match="has changed"):
        load_pack("onnx-mine")


def test_a_pack_made_again_under_its_name_is_loaded_and_hashed_again(packs_home):
    from pack_helpers import ready_pack

    from explainer.assets.fetch import cached_sha256, sha256_file

    folder = ready_pack("remade", seed=0)
    first = load_pack("remade")
    assert load_pack("remade") is first  # unchanged files: the pack loaded before
    hash_before = cached_sha256(folder / "transformer.pt")
    ready_pack("remade", seed=1)  # `pack create` again while the app runs: other weights, same paths
    again = load_pack("remade")
    assert again is not first and again.fingerprint != first.fingerprint
    assert cached_sha256(folder / "transformer.pt") == sha256_file(folder / "transformer.pt") != hash_before


def test_unknown_pack_names_list_every_pack(packs_home):
    with pytest.raises(UnknownName, match="known: dlib-dcgan, mobilefacenet-dcgan"):
        load_pack("no-such-pack")


def test_bad_recognizers_are_refused_with_the_reason(packs_home, tmp_path):
    small = conv_onnx(tmp_path / "small.onnx", size=96)
    with pytest.raises(RecognizerFileError, match=r"expected \[N, 3, 112, 112\]"):
        create_pack("wrong-size", small, config="cpu-tiny")
    constant = conv_onnx(tmp_path / "constant.onnx", constant=True)
    with pytest.raises(ModelDoesNotSeparate, match=r"AUC 0\.500 on 60 genuine and 720 impostor pairs"):
        create_pack("constant", constant, config="cpu-tiny")
    unknown = tmp_path / "unknown.pt"
    torch.save({"encoder.weight": torch.zeros(4, 4), "encoder.bias": torch.zeros(4)}, unknown)
    with pytest.raises(RecognizerFileError, match="unknown layout"):
        create_pack("unknown", unknown, config="cpu-tiny")
    generator = tmp_path / "latent.pt"
    torch.save(random_state(manifest("far_idd_encoder_14_8.json")["state_dict"], seed=1), generator)
    with pytest.raises(RecognizerFileError, match="not a face recognizer"):
        create_pack("not-a-face-model", generator, config="cpu-tiny")
    # Nothing half-made stays behind: each name is free for the next try.
    assert user_packs(include_unfinished=True) == [] and not any(packs_home.iterdir())


# -- the paper's own pair, from random checkpoints in the real layouts --------------------------------

def test_paper_folder_makes_both_paper_packs(packs_home, tmp_path, capsys):
    from test_checkpoints import rosinality_train_checkpoint

    from explainer.generation.paper import FACE_BACKBONE_FILES, GENERATOR_FILE, MAPPER_FILES, MEAN_WPLUS_FILE
    from explainer.recognition.irse import build_irse, infer_irse_config
    from explainer.recognition.mobilefacenet_torch import PAPER_STAGES, MobileFaceNetTorch

    torch.manual_seed(1)  # backbones at PyTorch's initial scale, saved from DataParallel like the paper's
    r50 = build_irse(infer_irse_config(random_state(manifest("far_arcface_r50.json")["state_dict"])))
    mb = MobileFaceNetTorch(PAPER_STAGES)
    folder = tmp_path / "paper"
    files = {FACE_BACKBONE_FILES["r50"]: {f"module.{k}": v for k, v in r50.state_dict().items()},
             FACE_BACKBONE_FILES["mb"]: {f"module.{k}": v for k, v in mb.state_dict().items()},
             MEAN_WPLUS_FILE: torch.zeros(1, 14, 512),
             GENERATOR_FILE: {"g_ema": rosinality_train_checkpoint(256)["g_ema"]}}
    for backbone in ("r50", "mb"):
        files[MAPPER_FILES[backbone]] = random_state(manifest("far_idd_encoder_14_8.json")["state_dict"], seed=5)
    for relative, payload in files.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        torch.save(payload, folder / relative)

    # Random weights do not separate people: the check is switched off here, as a user could.
    assert cli.main(["pack", "create", "--paper", str(folder), "--config", "cpu-tiny", "--min-auc", "0"]) == 0
    assert {"paper-arcface-r50", "paper-mobiface"} <= set(pack_names())
    for name, layout in (("paper-arcface-r50", "far_arcface_r50"), ("paper-mobiface", "far_arcface_mb")):
        made = read_manifest(name)
        assert made.kind == "paper" and made.status == READY and made.paper_directory == str(folder.resolve())
        assert set(made.files_sha256) >= {GENERATOR_FILE, MEAN_WPLUS_FILE}
        pack = load_pack(name)
        assert pack.recognizer.name == name and pack.decoder.size == 256
        assert json.loads((packs_home / name / "recognizer.json").read_text())["layout"] == layout
        with torch.no_grad():
            latents = pack.transformer(pack.recognizer(torch.rand(1, 3, 112, 112)))
        assert latents.shape == (1, 14, 512) and torch.isfinite(latents).all()
        assert "pack create" in pack.recognizer.threshold.source
    with pytest.raises(PackExists):
        create_paper_packs(folder, config="cpu-tiny", min_auc=0)


# -- insightface's published models: the same layout from a local file, and offline ------------------

def test_insightface_layout_from_a_local_file_and_offline_message(packs_home, tmp_path, monkeypatch, capsys):
    root = tmp_path / "insightface"
    (root / "models" / "buffalo_s").mkdir(parents=True)
    shutil.copyfile(faceplugin_onnx(), root / "models" / "buffalo_s" / "w600k_mbf.onnx")
    folder = create_insightface_pack("buffalo_s", root=root, download=False, config="cpu-tiny")
    assert folder.name == "insightface-buffalo-s" and read_manifest("insightface-buffalo-s").status == READY
    assert INSIGHTFACE_LICENCE in capsys.readouterr().out

    import insightface.utils.storage as storage

    def offline(*args, **kwargs):
        raise ConnectionError("no route to host")
    monkeypatch.setattr(storage, "ensure_available", offline)
    with pytest.raises(InsightfaceUnavailable, match="seems to be offline"):
        create_insightface_pack("buffalo_l", root=tmp_path / "empty", config="cpu-tiny")
    with pytest.raises(InsightfaceUnavailable, match="known: buffalo_l, buffalo_s"):
        create_insightface_pack("antelopev2", root=root)


# -- errors a user can cause are plain, never a traceback -----------------------------------------------
def _with_transformer(name: str, **config) -> None:
    """A ready pack whose transformer.pt is replaced by one of another shape (a wrong file copied in)."""
    from pack_helpers import ready_pack

    from explainer.generation.transformer import LatentTransformer, TransformerConfig
    from explainer.packs.catalogue import save_transformer

    folder = ready_pack(name)
    save_transformer(folder / "transformer.pt", LatentTransformer(TransformerConfig(**config)), {"test": True})


@pytest.mark.parametrize("config, said", [
    ({"embedding_dim": 512, "n_codes": 3, "code_dim": 7}, "does not fit its decoder"),
    ({"embedding_dim": 128, "n_codes": 1, "code_dim": 128}, "does not fit the recognizer: it takes 128-D"),
])
def test_a_transformer_that_does_not_fit_is_a_plain_cli_error(packs_home, capsys, config, said):
    from explainer.assets import datasets
    from explainer.generation.registry import load_decoder

    n_codes, code_dim = load_decoder("dcgan-digiface").latent_shape
    if config["n_codes"] == 1:  # the decoder's latent, a recognizer of another dimension
        config = {**config, "n_codes": n_codes, "code_dim": code_dim}
    _with_transformer("misfit", **config)
    photo = str(datasets.orl((31,))[0].path)
    assert cli.main(["recover", photo, "--pack", "misfit"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and said in err and "Traceback" not in err


def test_a_surrogate_that_is_the_target_is_a_plain_cli_error(capsys, tmp_path):
    probe, reference = _orl_pair()
    assert cli.main(["explain", probe, reference, "--attack", "transfer", "--surrogate", "dlib-resnet",
                     "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "other than the target (dlib-resnet); choose another with --surrogate" in err
