"""The general transformer trainer (Eq. 11) on an image folder with a StyleGAN2 decoder and the guide
encoder: 2 CPU steps, exact resume, LPIPS errors, and the output as a pack's transformer."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from explainer.generation.stylegan2 import load_stylegan2
from explainer.packs.catalogue import Pack, load_transformer
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
    monkeypatch.setenv("FACEXPLAIN_HOME", str(tmp_path))  # no lpips-alexnet asset here
    with pytest.raises(losses.LPIPSUnavailable, match="lpips-alexnet.*--perceptual_fallback"):
        losses.perceptual_distance("lpips")
    kind, distance = losses.perceptual_distance("lpips", fallback="edge")
    assert kind == "edge" and distance is losses.edge_structure_distance


def test_latent_realism_tells_prior_samples_from_a_collapse():
    prior = torch.randn(4096, 1, 100, generator=torch.Generator().manual_seed(0))
    mean, std = prior.mean(0), prior.std(0)
    samples = torch.randn(64, 1, 100, generator=torch.Generator().manual_seed(1))
    on_prior = float(losses.latent_realism(samples, mean, std))
    assert on_prior < 0.1  # sampling noise only: about 1 / 64 + 1 / 128
    collapsed = 0.3 * samples + 0.5  # the transformer's failure: small spread, off-centre
    assert float(losses.latent_realism(collapsed, mean, std)) > 5 * on_prior
    with pytest.raises(ValueError, match="at least 2"):
        losses.latent_realism(samples[:1], mean, std)


def test_init_fine_tunes_a_trained_transformer(folder_run, folder_args, tmp_path):
    """--init starts from a transformer.pt's weights; the realism term is trained and logged."""
    out = tmp_path / "tuned"
    args = [*folder_args, "--epochs", "none", "--steps", "1", "--init", str(folder_run / "transformer.pt"),
            "--weights.realism", "1", "--lr", "0"]
    assert main(["transformer", "--out", str(out), *args]) == 0
    start = torch.load(folder_run / "transformer.pt", weights_only=True)["state_dict"]
    tuned = torch.load(out / "transformer.pt", weights_only=True)["state_dict"]
    for key, value in start.items():  # lr 0: the weights are the initial ones, exactly
        assert torch.equal(tuned[key], value), key
    record = json.loads((out / "stats.jsonl").read_text().splitlines()[-1])
    assert record["realism"] > 0


def test_fine_tuning_configs_ask_for_init(tmp_path):
    from training.configs import get_config

    config = get_config("offline-dlib-lpips")
    assert (config.perceptual, config.weights.realism, config.init) == ("lpips", 2.0, "")
    with pytest.raises(ValueError, match="pass --init"):
        main(["transformer", "--config", "offline-dlib-lpips", "--out", str(tmp_path / "t")])
