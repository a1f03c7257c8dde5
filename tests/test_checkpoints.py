"""`facexplain checkpoint identify` and our classes for users' checkpoints, on random weights.

For every manifest in compat/ a random checkpoint is built in the wrapping the real file has (a
rosinality train.py dict with a pickled argparse.Namespace, a DataParallel `module.` prefix for the
paper's face backbones, bare state dicts for the rest), saved, identified through the API and the
CLI, and loaded strictly. The checkpoints' float tensors are views of one random buffer
(compat_manifests.random_state(shared_storage=True)), so files of 65M-parameter networks stay small.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch
from compat_manifests import layout_manifests, manifest, random_state

from explainer import cli
from explainer.generation.paper import FACE_BACKBONE_FILES, GENERATOR_FILE, MAPPER_FILES, MEAN_WPLUS_FILE
from explainer.generation.stylegan2 import CheckpointError, read_checkpoint
from explainer.packs.catalogue import load_paper_pack
from explainer.packs.checkpoints import NotACheckpoint, identify, identify_object, load_checkpoint
from explainer.recognition.arcface_trained import UNCALIBRATED_ARCFACE
from explainer.recognition.base import ARCFACE_112
from explainer.recognition.iresnet import IResNet
from explainer.recognition.irse import IRSENet
from explainer.recognition.mobilefacenet_torch import PAPER_STAGES, InsightfaceMBF, MobileFaceNetTorch

# Which part of the saved file a manifest describes, and how the real file wraps it.
ROSINALITY = {"rosinality_stylegan2_G128.json": (128, "g_ema"), "rosinality_stylegan2_D128.json": (128, "d"),
              "rosinality_stylegan2_G256.json": (256, "g_ema"), "rosinality_stylegan2_D256.json": (256, "d"),
              "far_stylegan2_G256.json": (256, "g_ema"), "far_stylegan2_D256.json": (256, "d"),
              "rosinality_checkpoint_toplevel.json": (256, None)}
MODULE_PREFIXED = ("far_arcface_r50.json", "far_arcface_mb.json")  # saved from DataParallel (remove_module_dict)


def rosinality_train_checkpoint(size: int, seed: int = 0) -> dict:
    """rosinality train.py's checkpoint dict (compat/rosinality_checkpoint_toplevel.json): g and g_ema
    share tensors, as in a file where EMA has not moved yet; optimiser states are empty."""
    generator = random_state(manifest(f"rosinality_stylegan2_G{size}.json")["state_dict"], seed, shared_storage=True)
    discriminator = random_state(manifest(f"rosinality_stylegan2_D{size}.json")["state_dict"], seed + 1,
                                 shared_storage=True)
    empty_adam = {"state": {}, "param_groups": [{"lr": 0.0016, "betas": (0.0, 0.99), "params": []}]}
    args = argparse.Namespace(size=size, channel_multiplier=2, latent=512, n_mlp=8, batch=16, iter=800000)
    return {"g": generator, "d": discriminator, "g_ema": generator, "g_optim": empty_adam, "d_optim": empty_adam,
            "args": args, "ada_aug_p": 0.0}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """name -> path of the random checkpoint for that manifest, built on first use (files shared)."""
    directory = tmp_path_factory.mktemp("checkpoints")
    paths: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name in ROSINALITY:
            size = ROSINALITY[name][0]
            key = f"rosinality_{size}"
            if key not in paths:
                paths[key] = directory / f"{size:06d}.pt"
                torch.save(rosinality_train_checkpoint(size), paths[key])
            return paths[key]
        if name not in paths:
            state = random_state(manifest(name)["state_dict"], seed=7, shared_storage=True)
            if name in MODULE_PREFIXED:
                state = {f"module.{k}": v for k, v in state.items()}
            paths[name] = directory / name.replace(".json", ".pth")
            torch.save(state, paths[name])
        return paths[name]
    return get


def _check_part(part: dict, expected_layout: str) -> None:
    assert expected_layout in [part["layout"], *part["same_layout_as"]], part["layout"]
    assert part["loads_strict"] is True
    assert part["missing"] == [] and part["unexpected"] == [] and part["shape_mismatches"] == []


def checkpoint_files() -> dict[str, list[str]]:
    """Saved file -> the manifests it covers: the rosinality files hold several (G, D, the wrapping)."""
    files: dict[str, list[str]] = {}
    for name in layout_manifests():
        key = f"rosinality_{ROSINALITY[name][0]}" if name in ROSINALITY else name
        files.setdefault(key, []).append(name)
    return files


def test_the_files_cover_every_manifest():
    covered = sorted(name for names in checkpoint_files().values() for name in names)
    assert covered == layout_manifests()
    assert len(covered) == 16 or not covered  # 18 files in compat/, less the notes and the key diffs


@pytest.mark.parametrize("file_key", list(checkpoint_files()))
def test_every_manifest_is_identified_and_loads_strictly(file_key, saved, tmp_path):
    names = checkpoint_files()[file_key]
    path = saved(names[0])
    ident = identify(path)
    out = tmp_path / "identify.json"
    assert cli.main(["checkpoint", "identify", str(path), "--json", str(out)]) == 0  # the CLI: same, as JSON
    report = json.loads(out.read_text())
    assert report["file"] == str(path) and report["loads_strict"] is True and ident.loads_strict

    for name in names:
        stem, spec = name.removesuffix(".json"), manifest(name)
        if name in ROSINALITY:
            assert ident.layout == report["layout"] == "rosinality_train_checkpoint"
            assert set(ident.components) == {"g_ema", "g", "d"}
            assert any("args (argparse.Namespace" in note and "'size': " in note for note in ident.notes)
            part = ROSINALITY[name][1]
            if part is None:  # the top-level manifest: the wrapping itself
                assert sorted(read_checkpoint(path)) == sorted(spec["top_level_keys_list"])
                continue
            _check_part(ident.components[part].to_json(), stem)
            _check_part(report["components"][part], stem)
            module, file_state = ident.components[part].module, read_checkpoint(path)[part]
        else:
            _check_part(ident.to_json(), stem)
            _check_part(report, stem)
            assert ident.module_prefix == (name in MODULE_PREFIXED)
            module, file_state = ident.module, torch.load(path, weights_only=True)
            file_state = {k.removeprefix("module."): v for k, v in file_state.items()}
        state = module.state_dict()
        assert sorted(k for k, _, _ in spec["state_dict"]) == sorted(state)  # every key
        for key, _, _ in spec["state_dict"][:: max(1, len(state) // 7)]:
            assert torch.equal(state[key], file_state[key]), key


# -- what does not fit is reported ------------------------------------------------------------------

@pytest.fixture(scope="module")
def mbf_state() -> dict:
    return random_state(manifest("insightface_mbf.json")["state_dict"], seed=3)


def test_renamed_missing_and_misshapen_keys_are_reported(mbf_state, tmp_path):
    state = dict(mbf_state)
    state["conv_sep.layers.1.weight_renamed"] = state.pop("conv_sep.layers.1.weight")
    del state["features.layers.2.weight"]
    state["layers.0.layers.2.weight"] = torch.zeros(7)
    torch.save(state, tmp_path / "broken.pt")

    ident = identify(tmp_path / "broken.pt")
    assert ident.layout == "insightface_mbf" and not ident.loads_strict and ident.module is None
    assert ident.missing == ["conv_sep.layers.1.weight", "features.layers.2.weight"]
    assert ident.unexpected == ["conv_sep.layers.1.weight_renamed"]
    assert ident.shape_mismatches == ["layers.0.layers.2.weight: file (7,) vs model (128,)"]
    with pytest.raises(CheckpointError, match=r"looks like insightface_mbf but does not load strictly .*2 missing"):
        load_checkpoint(tmp_path / "broken.pt")

    out = tmp_path / "broken.json"
    assert cli.main(["checkpoint", "identify", str(tmp_path / "broken.pt"), "--json", str(out)]) == 2
    report = json.loads(out.read_text())
    assert (report["layout"], report["loads_strict"]) == ("insightface_mbf", False)
    assert report["missing"] == ident.missing and report["unexpected"] == ident.unexpected


def test_wrappers_prefix_and_old_batchnorm_counters(mbf_state):
    prefixed = {f"module.{k}": v for k, v in mbf_state.items()}
    for wrapped, location in ((prefixed, ""), ({"state_dict": prefixed, "epoch": 3}, "['state_dict']"),
                              ({"epoch": 9, "global_step": 100, "state_dict_backbone": mbf_state,
                                "state_dict_softmax_fc": {"weight": torch.zeros(2, 2)}}, "['state_dict_backbone']")):
        ident = identify_object(wrapped)
        assert (ident.layout, ident.loads_strict, ident.location) == ("insightface_mbf", True, location)
        assert ident.module_prefix == (wrapped is prefixed or "state_dict" in wrapped)
        assert torch.equal(ident.module.state_dict()["conv_sep.layers.0.weight"], mbf_state["conv_sep.layers.0.weight"])
    assert any("not loaded: ['epoch', 'global_step', 'state_dict_softmax_fc']" in n for n in ident.notes)

    # files from PyTorch < 0.4.1 have no num_batches_tracked: filled, as torch's strict load does
    old = {k: v for k, v in mbf_state.items() if not k.endswith("num_batches_tracked")}
    ident = identify_object(old)
    assert ident.loads_strict and any("num_batches_tracked" in n for n in ident.notes)


class NotAllowed:
    """An arbitrary pickled class: weights-only loading must refuse it."""


def test_files_that_are_not_checkpoints(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not a checkpoint\n")
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        identify(tmp_path / "notes.txt")
    assert cli.main(["checkpoint", "identify", str(tmp_path / "notes.txt")]) == 1
    assert "not a readable torch checkpoint" in capsys.readouterr().err

    torch.save(torch.zeros(1, 14, 512), tmp_path / "mean_wplus.pth")
    with pytest.raises(NotACheckpoint, match=r"bare tensor of shape \(1, 14, 512\).*load_mean_wplus"):
        identify(tmp_path / "mean_wplus.pth")
    torch.save({"encoder.weight": torch.zeros(3, 3), "encoder.bias": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(NotACheckpoint, match="matches no layout we know"):
        identify(tmp_path / "other.pt")
    torch.save({"g_ema": {}, "evil": NotAllowed()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="refused to unpickle.*never executes pickled code"):
        identify(tmp_path / "evil.pt")
    (tmp_path / "model.onnx").write_bytes(b"\x00garbage")
    with pytest.raises(NotACheckpoint, match="not a readable ONNX file"):
        identify(tmp_path / "model.onnx")


def test_onnx_export_is_identified_not_loaded(tmp_path):
    # what insightface's torch2onnx.py does with its mbf: an eval-mode export (BatchNorm folded away)
    model = InsightfaceMBF().eval()

    class Backbone(torch.nn.Module):  # the raw network, without our [0, 1] normalisation
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, x):
            return self.model.embed_normalised(x)
    torch.onnx.export(Backbone(), torch.randn(1, 3, 112, 112), tmp_path / "w600k_mbf.onnx", input_names=["data"],
                      opset_version=11, dynamo=False)
    ident = identify(tmp_path / "w600k_mbf.onnx")
    assert (ident.layout, ident.loads_strict, ident.family) == ("insightface_mbf", False, "onnx")
    assert any("OnnxRecognizer" in note for note in ident.notes)


# -- the recognizers on real faces ------------------------------------------------------------------

RECOGNIZERS = {
    "far_arcface_r50": lambda: IRSENet(50, variant="far"),
    "treb_ir_se50": lambda: IRSENet(50),
    "insightface_iresnet50": lambda: IResNet(50),
    "insightface_iresnet100": lambda: IResNet(100),
    "far_arcface_mb": lambda: MobileFaceNetTorch(PAPER_STAGES),
    "treb_mobilefacenet": lambda: MobileFaceNetTorch(),
    "insightface_mbf": lambda: InsightfaceMBF(),
}


@pytest.fixture(scope="module")
def three_crops(real_crops_112) -> torch.Tensor:
    """A man's and a woman's colour portrait and a grey ORL face, float [3, 3, 112, 112] in [0, 1]
    (three: the IR-50/100 networks cost ~10 GFLOPs a face on two CPU cores)."""
    picked = real_crops_112[[0, 4, 8]]
    return torch.from_numpy(picked).permute(0, 3, 1, 2).float() / 255.0


@pytest.mark.parametrize("layout", list(RECOGNIZERS))
def test_recognizer_on_real_crops(layout, three_crops):
    torch.manual_seed(0)
    model = RECOGNIZERS[layout]().eval()  # random weights (PyTorch's default initialisation)
    assert model.crop == ARCFACE_112 and model.metric.name == "cosine"
    assert model.threshold == UNCALIBRATED_ARCFACE and "UNCALIBRATED" in model.threshold.source
    with torch.no_grad():
        embeddings = model(three_crops)
    assert embeddings.shape == (3, 512) and torch.isfinite(embeddings).all()
    if model.l2_normalise:
        torch.testing.assert_close(embeddings.norm(dim=1), torch.ones(3))
    similarity = model.similarity(embeddings[:, None], embeddings[None])
    assert (similarity.diagonal() > 0.999).all()
    assert (similarity[~torch.eye(3, dtype=torch.bool)] < 0.99999).all(), "different faces, different embeddings"

    one = three_crops[1:2].clone().requires_grad_(True)
    alone = model(one)
    # eval mode: a face's embedding does not depend on the rest of the batch
    torch.testing.assert_close(alone.detach(), embeddings[1:2], atol=1e-4, rtol=1e-4)
    model.similarity(alone, embeddings[2:3]).sum().backward()  # differentiable w.r.t. the pixels
    assert torch.isfinite(one.grad).all() and one.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="expected 112x112 crops"):
        model(torch.zeros(1, 3, 96, 96))


# -- the paper's pack, from its checkpoint files ------------------------------------------------------

def test_paper_pack_takes_the_papers_arcface_checkpoint(tmp_path, saved, three_crops):
    directory = tmp_path / "paper"
    torch.manual_seed(1)  # a backbone at PyTorch's initial scale, saved from DataParallel like the paper's
    backbone = {f"module.{k}": v for k, v in MobileFaceNetTorch(PAPER_STAGES).state_dict().items()}
    files = {FACE_BACKBONE_FILES["mb"]: backbone,
             MAPPER_FILES["mb"]: random_state(manifest("far_idd_encoder_14_8.json")["state_dict"], seed=5),
             MEAN_WPLUS_FILE: torch.zeros(1, 14, 512),
             GENERATOR_FILE: torch.load(saved("rosinality_stylegan2_G256.json"), weights_only=False)}
    for relative, payload in files.items():
        (directory / relative).parent.mkdir(parents=True, exist_ok=True)
        torch.save(payload, directory / relative)

    pack = load_paper_pack(directory, backbone="mb")
    assert pack.name == "paper-mb" and pack.recognizer.name == "paper-arcface-mb"
    assert isinstance(pack.recognizer, MobileFaceNetTorch) and pack.recognizer.config.stages == PAPER_STAGES
    assert not any(p.requires_grad for p in pack.recognizer.parameters())
    assert torch.equal(pack.recognizer.state_dict()["conv_5.model.5.project.bn.weight"],
                       backbone["module.conv_5.model.5.project.bn.weight"])
    with torch.no_grad():
        embeddings = pack.recognizer(three_crops[:1])
        latents = pack.transformer(embeddings)
    assert embeddings.shape == (1, 512) and latents.shape == (1, 14, 512) and torch.isfinite(latents).all()
    assert pack.card["threshold"] == UNCALIBRATED_ARCFACE.source

    (directory / FACE_BACKBONE_FILES["mb"]).unlink()
    with pytest.raises(FileNotFoundError, match="checkpoint/arcface_mb.pth"):
        load_paper_pack(directory, backbone="mb")
