"""The general transformer trainer (Eq. 11) on an image folder with a StyleGAN2 decoder and the guide
encoder: 2 CPU steps, exact resume, LPIPS errors, and the output as a pack's transformer."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from explainer.generation.stylegan2 import load_stylegan2
from explainer.packs import Pack, load_transformer
from explainer.recognition.registry import load_recognizer
from training import losses
from training.__main__ import main


@pytest.fixture(scope="module")
def folder_args(tiny_decoder_run, tiny_face_folder, tmp_path_factory, single_thread):
    encoder = tmp_path_factory.mktemp("enc")
    assert main(["encoder", "--config", "cpu-tiny", "--out", str(encoder), "--decoder",
                 str(tiny_decoder_run / "checkpoint.pt")]) == 0
    # the paper's config, shrunk: its data path, L_guide from E, LPIPS (untrained backbone here)
    return ["--config", "paper-gpu-128", "--data", str(tiny_face_folder), "--decoder",
            str(tiny_decoder_run / "checkpoint.pt"), "--guide_encoder", str(encoder / "checkpoint.pt"),
            "--batch_real", "4", "--device", "cpu", "--workers", "0", "--log_every", "1",
            "--perceptual", "lpips-random"]


@pytest.fixture(scope="module")
def folder_run(folder_args, tmp_path_factory):
    out = tmp_path_factory.mktemp("transformer")
    assert main(["transformer", "--out", str(out), *folder_args, "--epochs", "none", "--steps", "2"]) == 0
    return out


def test_paper_config_is_the_papers():
    from training.configs import get_config

    config = get_config("paper-gpu-256")
    assert (config.batch_real, config.lr, config.epochs, config.perceptual) == (16, 0.01, 20, "lpips")
    w = config.weights
    assert (w.reconstruction, w.perceptual, w.identity, w.guide, w.regularisation, w.lightness) == (
        0.1, 0.8, 8.0, 0.1, 0.02, 0.0)


def test_folder_run_logs_the_five_terms(folder_run):
    records = [json.loads(line) for line in (folder_run / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]
    for term in ("identity", "reconstruction", "perceptual", "guide", "regularisation"):
        assert records[-1][term] > 0, term
    assert "lightness" not in records[-1]  # weight 0 in the paper's config: not computed


def test_output_is_a_pack_transformer(folder_run, tiny_decoder_run):
    decoder = load_stylegan2(tiny_decoder_run / "checkpoint.pt")
    transformer, card = load_transformer(folder_run / "transformer.pt", decoder.mean_latent)
    assert card["perceptual"] == "lpips-random" and card["data"]["real_photos"] == 16
    pack = Pack("tiny", load_recognizer("dlib-resnet"), decoder, transformer, card)
    recovery = pack.recover(torch.randn(3, 128))
    assert recovery.images.shape == (3, 3, 16, 16)


def test_resume_continues_exactly(folder_run, folder_args, tmp_path):
    resumed, straight = tmp_path / "resumed", tmp_path / "straight"
    shutil.copytree(folder_run, resumed)
    args = [*folder_args, "--epochs", "none", "--steps", "3"]
    assert main(["transformer", "--out", str(resumed), *args]) == 0
    assert main(["transformer", "--out", str(straight), *args]) == 0
    assert [json.loads(x)["step"] for x in (resumed / "stats.jsonl").read_text().splitlines()] == [1, 2, 3]
    a = torch.load(resumed / "checkpoint.pt", weights_only=True)
    b = torch.load(straight / "checkpoint.pt", weights_only=True)
    for key, value in b["state_dict"].items():
        torch.testing.assert_close(a["state_dict"][key], value, rtol=1e-5, atol=1e-6, msg=key)


def test_epochs_set_the_length(folder_args, tmp_path):
    out = tmp_path / "epoch"
    assert main(["transformer", "--out", str(out), *folder_args, "--epochs", "1"]) == 0
    # 16 photos, batch 4, one process: 4 steps make one epoch
    assert json.loads((out / "stats.jsonl").read_text().splitlines()[-1])["step"] == 4


def test_lpips_without_backbone_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no AlexNet weights here
    with pytest.raises(losses.LPIPSUnavailable, match="alexnet-owt-7be5be79.pth.*--perceptual_fallback"):
        losses.perceptual_distance("lpips")
    kind, distance = losses.perceptual_distance("lpips", fallback="edge")
    assert kind == "edge" and distance is losses.edge_structure_distance
