"""The guide-encoder trainer: 2 CPU steps against the tiny trained decoder, strict load, exact resume."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from explainer.generation.guide_encoder import GuideEncoder, load_guide_encoder
from explainer.generation.stylegan2 import load_stylegan2
from training.__main__ import main
from training.train_encoder import codes_per_level


@pytest.fixture(scope="module")
def tiny_encoder_run(tmp_path_factory, tiny_decoder_run, tiny_face_folder, single_thread):
    out = tmp_path_factory.mktemp("encoder")
    assert main(["encoder", "--config", "cpu-tiny", "--out", str(out), "--decoder",
                 str(tiny_decoder_run / "checkpoint.pt"), "--data", str(tiny_face_folder)]) == 0
    return out


def test_codes_per_level_matches_the_paper():
    assert codes_per_level(14) == (3, 4, 7) and codes_per_level(12) == (3, 4, 5) and codes_per_level(6) == (2, 2, 2)


def test_two_steps_and_strict_load(tiny_encoder_run, tiny_decoder_run):
    records = [json.loads(line) for line in (tiny_encoder_run / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]
    assert all(r["latent_mse"] > 0 and r["image_l1"] > 0 for r in records)
    encoder = load_guide_encoder(tiny_encoder_run / "checkpoint.pt")  # strict, config inferred from the keys
    assert isinstance(encoder, GuideEncoder) and encoder.latent_shape == (6, 32)
    decoder = load_stylegan2(tiny_decoder_run / "checkpoint.pt")
    # centred on the decoder's mean latent, and reads a latent G can render
    torch.testing.assert_close(encoder.mean_latent.reshape(6, 32), decoder.mean_latent)
    faces = decoder(decoder.sample_latents(2, generator=torch.Generator().manual_seed(0)))
    latents = encoder(faces)
    assert latents.shape == (2, 6, 32) and decoder(latents).shape == (2, 3, 16, 16)


def test_resume_continues_exactly(tiny_encoder_run, tiny_decoder_run, tiny_face_folder, tmp_path, single_thread):
    resumed, straight = tmp_path / "resumed", tmp_path / "straight"
    shutil.copytree(tiny_encoder_run, resumed)
    common = ["--config", "cpu-tiny", "--decoder", str(tiny_decoder_run / "checkpoint.pt"),
              "--data", str(tiny_face_folder), "--steps", "3"]
    assert main(["encoder", "--out", str(resumed), *common]) == 0
    assert main(["encoder", "--out", str(straight), *common]) == 0
    assert [json.loads(x)["step"] for x in (resumed / "stats.jsonl").read_text().splitlines()] == [1, 2, 3]
    a = torch.load(resumed / "checkpoint.pt", weights_only=True)
    b = torch.load(straight / "checkpoint.pt", weights_only=True)
    assert a["step"] == b["step"] == 3
    for key, value in b["state_dict"].items():
        torch.testing.assert_close(a["state_dict"][key], value, rtol=1e-5, atol=1e-6, msg=key)
