"""The StyleGAN2 decoder trainer: a 2-step CPU run on real faces, its outputs, and exact resumption."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from explainer.generation.stylegan2 import StyleGAN2Decoder, load_stylegan2
from explainer.generation.stylegan2_discriminator import load_discriminator
from training.__main__ import main


def test_two_steps_log_every_term(tiny_decoder_run):
    records = [json.loads(line) for line in (tiny_decoder_run / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]
    assert records[-1]["kimg"] == 0.008  # 2 steps x 4 images
    for name in ("d_loss", "g_loss", "r1", "path_penalty", "real_score", "fake_score"):
        assert np.isfinite(records[-1][name]), name
    # the non-saturating D loss starts near 2 log 2 and must be positive
    assert 0 < records[0]["d_loss"] < 5


def test_checkpoint_is_plain_and_g_ema_loads_strictly(tiny_decoder_run):
    checkpoint = torch.load(tiny_decoder_run / "checkpoint.pt", weights_only=True)  # nothing pickled
    assert {"g", "d", "g_ema", "g_optim", "d_optim"} <= set(checkpoint)  # rosinality's top level
    assert checkpoint["step"] == 2 and checkpoint["config"]["name"] == "cpu-tiny"
    config = checkpoint["config"]
    decoder = StyleGAN2Decoder(config["size"], config["channel_multiplier"], config["style_dim"], config["n_mlp"],
                               channel_max=config["channel_max"])
    decoder.load_state_dict(checkpoint["g_ema"], strict=True)
    loaded = load_stylegan2(tiny_decoder_run / "checkpoint.pt")  # infers the tiny, capped architecture
    assert loaded.config == decoder.config and loaded.latent_shape == (6, 32)
    faces = loaded(loaded.sample_latents(3, generator=torch.Generator().manual_seed(1)))
    assert faces.shape == (3, 3, 16, 16) and 0 <= faces.min() and faces.max() <= 1
    assert load_discriminator(tiny_decoder_run / "checkpoint.pt").size == 16
    # training moved the weights away from the EMA start: G and g_ema differ, but little
    diff = [(checkpoint["g"][k] - v).abs().max().item() for k, v in checkpoint["g_ema"].items() if v.is_floating_point()]
    assert 0 < max(diff)


def test_sample_grid_written(tiny_decoder_run):
    grid = np.asarray(Image.open(tiny_decoder_run / "samples" / "000002.png"))
    assert grid.shape == (33, 33, 3) and grid.std() > 0  # 2 x 2 faces of 16 px, 1 px gaps


def test_resume_continues_exactly(tiny_decoder_run, tiny_face_folder, tmp_path, single_thread):
    resumed = tmp_path / "resumed"
    shutil.copytree(tiny_decoder_run, resumed)
    straight = tmp_path / "straight"
    common = ["--config", "cpu-tiny", "--data", str(tiny_face_folder), "--kimg", "0.016"]  # 4 steps
    assert main(["decoder", "--out", str(resumed), *common]) == 0
    assert main(["decoder", "--out", str(straight), *common]) == 0
    steps = [json.loads(line)["step"] for line in (resumed / "stats.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]  # the counter continued from the checkpoint's 2
    a = torch.load(resumed / "checkpoint.pt", weights_only=True)
    b = torch.load(straight / "checkpoint.pt", weights_only=True)
    assert a["step"] == b["step"] == 4
    for part in ("g", "d", "g_ema"):
        for key, value in b[part].items():
            torch.testing.assert_close(a[part][key], value, rtol=1e-5, atol=1e-6, msg=f"{part}.{key}")
    assert a["mean_path_length"] == pytest.approx(b["mean_path_length"], rel=1e-5)


def test_resume_refuses_another_architecture(tiny_decoder_run, tiny_face_folder, tmp_path):
    out = tmp_path / "other"
    shutil.copytree(tiny_decoder_run, out)
    with pytest.raises(ValueError, match="networks differ.*channel_max"):
        main(["decoder", "--config", "cpu-tiny", "--out", str(out), "--data", str(tiny_face_folder),
              "--channel_max", "16", "--kimg", "0.012"])


def test_length_is_images_whatever_the_gpu_count():
    from training.configs import get_config
    from training.train_decoder import total_steps

    paper = get_config("paper-gpu-256", "decoder")
    assert total_steps(paper, 8) == 550_000  # the paper's 550k steps at 4 x 8 images
    for world_size in (1, 2, 3, 8):
        steps = total_steps(paper, world_size)
        images = steps * paper.batch * world_size
        # the same 17.6 M images, give or take the last global batch
        assert paper.kimg * 1000 <= images < paper.kimg * 1000 + paper.batch * world_size
    assert total_steps(get_config("cpu-tiny", "decoder"), 1) == 2


def test_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no images"):
        main(["decoder", "--config", "cpu-tiny", "--out", str(tmp_path / "o"), "--data", str(tmp_path)])
