"""StyleGAN2Decoder (rosinality layout) and the paper's checkpoint loader, on random weights.

The key/shape manifests of the real checkpoints live outside the repository (compat/, see SOURCES.md);
tests/compat_manifests.py finds them (and skips when absent) and builds random state dicts from them.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from explainer.generation.paper import (
    GENERATOR_FILE, MAPPER_FILES, MEAN_WPLUS_FILE, PaperCheckpointsMissing, load_paper_checkpoints,
    paper_transformer_config)
from explainer.generation.stylegan2 import (
    FFHQ_TEMPLATES_128, FFHQ_TEMPLATES_256, MEAN_LATENT_SAMPLES, CheckpointError, ModulatedConv2d,
    StyleGAN2Decoder, Upsample, ffhq_frame, fir_kernel, load_strict, load_stylegan2, upfirdn2d,
    wplus_layer_map)
from explainer.generation.transformer import LatentTransformer
from explainer.recognition.base import ARCFACE_112
from compat_manifests import key_shapes, manifest, random_state

GENERATOR_MANIFESTS = ("rosinality_stylegan2_G128.json", "rosinality_stylegan2_G256.json",
                       "far_stylegan2_G256.json")


@pytest.fixture(scope="module")
def decoder_128() -> StyleGAN2Decoder:
    torch.manual_seed(0)
    decoder = StyleGAN2Decoder(128)
    with torch.no_grad():  # rosinality initialises noise strengths at 0; make the noise maps matter
        for conv in [decoder.conv1, *decoder.convs]:
            conv.noise.weight.fill_(0.3)
    return decoder


# -- (a) every generator manifest loads strictly ----------------------------------------------------

@pytest.mark.parametrize("name", GENERATOR_MANIFESTS)
def test_generator_manifest_loads_strictly(name):
    spec = manifest(name)
    state = random_state(spec["state_dict"])
    decoder = load_stylegan2(state)

    n_codes = spec["observed_forward_shapes"]["n_latent(W+ codes)"]
    size = 2 ** ((n_codes + 2) // 2)
    assert f"Generator({size}, 512, 8, channel_multiplier=2)" in spec["constructor"]
    assert (decoder.size, decoder.latent_shape, decoder.config.channel_multiplier) == (size, (n_codes, 512), 2)
    # same keys, shapes and order as the manifest; the same parameter count
    assert key_shapes(decoder.state_dict()) == [(key, tuple(shape)) for key, shape, _ in spec["state_dict"]]
    assert sum(p.numel() for p in decoder.parameters()) == spec["num_parameter_elements"]
    assert all(torch.equal(decoder.state_dict()[key], value) for key, value in state.items())
    # the default mean latent (the mapping mean, see test_mean_latent_...) is the same on every code
    assert decoder.mean_latent.shape == (n_codes, 512)
    assert torch.equal(decoder.mean_latent[0], decoder.mean_latent[-1])
    assert str(MEAN_LATENT_SAMPLES) in decoder.mean_latent_source


# -- (b) wrapped forms, files, and clear errors -----------------------------------------------------

def test_wrapped_state_dicts_load():
    state = random_state(manifest("rosinality_stylegan2_G128.json")["state_dict"], seed=1)
    for wrapped in ({"g_ema": state}, {f"module.{k}": v for k, v in state.items()},
                    {"g": state, "d": {}, "g_ema": {f"module.{k}": v for k, v in state.items()}}):
        # a pinned [512] mean (broadcast to the 12 codes) also spares the mapping-mean computation
        decoder = load_stylegan2(wrapped, size=128, mean_latent=torch.ones(512))
        assert torch.equal(decoder.state_dict()["convs.9.conv.weight"], state["convs.9.conv.weight"])
        assert torch.equal(decoder.mean_latent, torch.ones(12, 512))

    with pytest.raises(CheckpointError, match="a 128 px generator .12 W. codes., not 256 px"):
        load_stylegan2(state, size=256)
    partial = {k: v for k, v in state.items() if not k.startswith("noises.noise_1")}  # 1 and 10
    with pytest.raises(CheckpointError, match=r"(?s)2 missing: noises.noise_1, noises.noise_10\n.*2020-01-15"):
        load_stylegan2(partial)
    wrong = dict(state, **{"convs.9.activate.bias": torch.zeros(7)})
    with pytest.raises(CheckpointError, match=r"shape mismatch: convs.9.activate.bias: file \(7,\) vs model \(256,\)"):
        load_stylegan2(wrong)
    with pytest.raises(CheckpointError, match="training generator 'g' but no 'g_ema'"):
        load_stylegan2({"g": state, "d": {}})


class NotAllowed:
    """A pickled object of an arbitrary class: weights-only loading must refuse it."""


def test_rosinality_checkpoint_file(tmp_path):
    # A small generator keeps the file small; the structure is train.py's (g and g_ema share tensors,
    # so torch.save stores them once), with the argparse.Namespace it pickles under "args".
    state = StyleGAN2Decoder(8, n_mlp=2, compute_mean_latent=False).state_dict()
    args = argparse.Namespace(size=8, channel_multiplier=2, latent=512, n_mlp=2, lr=0.002)
    checkpoint = {"g": state, "d": {}, "g_ema": state, "g_optim": {"state": {}, "param_groups": []},
                  "d_optim": {"state": {}, "param_groups": []}, "args": args, "ada_aug_p": 0.0}
    torch.save(checkpoint, tmp_path / "000008.pt")
    decoder = load_stylegan2(tmp_path / "000008.pt")
    assert (decoder.size, decoder.latent_shape, decoder.config.n_mlp) == (8, (4, 512), 2)
    assert torch.equal(decoder.noise(2), state["noises.noise_2"])
    # pre-1.6 (non-zip) serialisation: read without memory mapping
    torch.save({"g_ema": state}, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    assert torch.equal(load_stylegan2(tmp_path / "legacy.pt").noise(2), state["noises.noise_2"])

    torch.save(dict(checkpoint, evil=NotAllowed()), tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="refused to unpickle.*never executes pickled code"):
        load_stylegan2(tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="no checkpoint file"):
        load_stylegan2(tmp_path / "absent.pt")


# -- (c) forward at 128 px ---------------------------------------------------------------------------

def test_forward_128_deterministic_batch_independent_differentiable(decoder_128):
    decoder = decoder_128
    generator = torch.Generator().manual_seed(3)
    latents = decoder.sample_latents(2, generator) + 0.5 * torch.randn(2, 12, 512, generator=generator)

    with torch.no_grad():
        pair = decoder(latents)
    assert pair.shape == (2, 3, 128, 128)
    assert pair.min() >= 0 and pair.max() <= 1
    assert ((pair > 0) & (pair < 1)).float().mean() > 0.1  # random weights saturate many, not all

    single = latents[1:].clone().requires_grad_(True)
    alone = decoder(single)
    torch.testing.assert_close(alone.detach(), pair[1:], atol=1e-5, rtol=0)  # batch-independent
    alone.mean().backward()
    assert torch.isfinite(single.grad).all()
    assert (single.grad.abs().sum(dim=(0, 2)) > 0).all(), "every W+ code must reach the image"
    with torch.no_grad():
        assert torch.equal(decoder(latents[1:]), alone.detach())  # fixed noise maps: no randomness

    with pytest.raises(ValueError, match="expected latents"):
        decoder(torch.zeros(1, 14, 512))


def test_modulated_conv_equals_per_sample_weight_modulation():
    # StyleGAN2's definition: w'_oik = s_i w_oik, demodulated by 1/||w'_o||, one conv per sample.
    torch.manual_seed(0)
    for upsample in (False, True):
        conv = ModulatedConv2d(8, 6, 3, style_dim=16, upsample=upsample)
        x, w = torch.randn(3, 8, 5, 5), torch.randn(3, 16)
        styles = conv.modulation(w)
        expected = []
        for b in range(3):
            weight = conv.scale * conv.weight[0] * styles[b][None, :, None, None]
            weight = weight * torch.rsqrt(weight.square().sum(dim=(1, 2, 3)) + 1e-8)[:, None, None, None]
            if upsample:
                expected.append(conv.blur(F.conv_transpose2d(x[b:b + 1], weight.transpose(0, 1), stride=2)))
            else:
                expected.append(F.conv2d(x[b:b + 1], weight, padding=1))
        out = conv(x, w)
        assert out.shape == (3, 6, 10, 10) if upsample else (3, 6, 5, 5)
        torch.testing.assert_close(out, torch.cat(expected), atol=1e-5, rtol=1e-5)


def test_mean_latent_follows_weights_unless_pinned(decoder_128):
    decoder = StyleGAN2Decoder(128, compute_mean_latent=False)
    decoder.load_state_dict(decoder_128.state_dict())  # the load hook recomputes the mean
    mean_w = decoder_128.mapping(torch.randn(MEAN_LATENT_SAMPLES, 512, generator=torch.Generator().manual_seed(0)))
    torch.testing.assert_close(decoder.mean_latent, mean_w.mean(dim=0).expand(12, 512))

    pinned = torch.randn(1, 12, 512)
    decoder.set_mean_latent(pinned, "test")
    decoder.load_state_dict(decoder_128.state_dict())
    assert torch.equal(decoder.mean_latent, pinned[0])
    with pytest.raises(CheckpointError, match="does not fit"):
        decoder.set_mean_latent(torch.zeros(14, 512), "wrong")

    samples = decoder_128.sample_latents(3, torch.Generator().manual_seed(5))
    assert samples.shape == (3, 12, 512) and torch.equal(samples[:, 0], samples[:, 7])
    assert torch.equal(samples, decoder_128.sample_latents(3, torch.Generator().manual_seed(5)))
    truncated = decoder_128.sample_latents(3, torch.Generator().manual_seed(5), truncation=0.0)
    torch.testing.assert_close(truncated, decoder_128.mean_latent.expand(3, 12, 512))


def test_wplus_layer_map():
    layers = wplus_layer_map(256)
    assert len(layers) == 14
    assert layers[0] == ("conv1",) and layers[1] == ("to_rgb1", "convs.0") and layers[13] == ("to_rgbs.5",)
    names = [name for code in layers for name in code]
    assert sorted(names) == sorted(["conv1", "to_rgb1"] + [f"convs.{i}" for i in range(12)]
                                   + [f"to_rgbs.{k}" for k in range(6)])
    assert len(wplus_layer_map(128)) == 12


# -- templates ---------------------------------------------------------------------------------------

def test_ffhq_templates():
    arc = np.array(FFHQ_TEMPLATES_256["arcface5"])
    # FFHQ's crop is 4 inter-ocular distances wide when eye distance dominates: eyes at 3/8 and 5/8
    np.testing.assert_allclose(arc[:2, 0], [0.375 * 256 - 0.5, 0.625 * 256 - 0.5], atol=1e-3)
    np.testing.assert_allclose(arc[[0, 3], 0] + arc[[1, 4], 0], 255.0, atol=1e-2)  # symmetric
    assert arc[0, 1] < arc[2, 1] < arc[3, 1]  # eyes above nose above mouth
    # 128 px is the 256 px frame scaled (pixel centres: x_128 = (x_256 + 0.5) / 2 - 0.5)
    for scheme in ("arcface5", "dlib5"):
        np.testing.assert_allclose((np.array(FFHQ_TEMPLATES_256[scheme]) + 0.5) / 2 - 0.5,
                                   FFHQ_TEMPLATES_128[scheme], atol=1e-3)
    dlib = np.array(FFHQ_TEMPLATES_256["dlib5"])
    assert dlib[2, 0] < arc[0, 0] < dlib[3, 0] and dlib[1, 0] < arc[1, 0] < dlib[0, 0]  # eye corners
    # the same procedure on a different mean face (ArcFace's 112 template) lands within ~3 px
    template = np.array(ARCFACE_112.template)
    corner, x, y = ffhq_frame(template[0], template[1], template[3], template[4])
    side = 2 * np.hypot(*x)
    other = np.stack([[(p - corner) @ x, (p - corner) @ y] for p in template]) / np.hypot(*x) / side * 256 - 0.5
    assert np.abs(other - arc).max() < 3.5


# -- (e) upfirdn2d -----------------------------------------------------------------------------------

def test_upfirdn2d_properties():
    kernel = fir_kernel()
    assert math.isclose(kernel.sum().item(), 1.0, rel_tol=1e-6)
    # constant images keep their value away from the zero-padded border
    constant = torch.full((1, 2, 8, 8), 0.7)
    up = upfirdn2d(constant, kernel * 4, up=2, pad=(2, 1))
    down = upfirdn2d(constant, kernel, down=2, pad=(1, 1))
    assert up.shape == (1, 2, 16, 16) and down.shape == (1, 2, 4, 4)
    torch.testing.assert_close(up[..., 2:-2, 2:-2], torch.full_like(up[..., 2:-2, 2:-2], 0.7))
    torch.testing.assert_close(down[..., 1:-1, 1:-1], torch.full_like(down[..., 1:-1, 1:-1], 0.7))

    # up then down with the same FIR returns a smooth image closely (interior)
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    smooth = (torch.sin(2 * math.pi * xx / 32) * torch.cos(2 * math.pi * yy / 32) + xx / 64)[None, None]
    round_trip = upfirdn2d(upfirdn2d(smooth, kernel * 4, up=2, pad=(2, 1)), kernel, down=2, pad=(1, 1))
    assert round_trip.shape == smooth.shape
    assert (round_trip - smooth)[..., 3:-3, 3:-3].abs().max() < 0.02 * smooth.abs().max()

    # Upsample keeps pixel centres aligned: a ramp is sampled at x_in = (x_out + 0.5) / 2 - 0.5
    ramp = xx[None, None]
    upsampled = Upsample()(ramp)[0, 0, 10, 4:-4]
    torch.testing.assert_close(upsampled, (torch.arange(4.0, 60.0) + 0.5) / 2 - 0.5)


# -- (d) the paper's checkpoints ---------------------------------------------------------------------

def test_paper_mapper_manifest_loads_strictly():
    spec = manifest("far_idd_encoder_14_8.json")
    transformer = LatentTransformer(paper_transformer_config())
    assert sorted(key_shapes(transformer.state_dict())) == sorted((k, tuple(s)) for k, s, _ in spec["state_dict"])
    load_strict(transformer, random_state(spec["state_dict"]), "far_idd_encoder_14_8")
    assert sum(p.numel() for p in transformer.parameters()) == spec["num_parameter_elements"]


@pytest.fixture(scope="module")
def paper_dir(tmp_path_factory) -> Path:
    """The paper's repository layout with random files: r50 mapper, mean W+ [1, 14, 512], generator."""
    directory = tmp_path_factory.mktemp("paper")
    mapper = random_state(manifest("far_idd_encoder_14_8.json")["state_dict"], seed=2)
    generator = random_state(manifest("far_stylegan2_G256.json")["state_dict"], seed=3)
    for relative, payload in ((MAPPER_FILES["r50"], mapper),
                              (MEAN_WPLUS_FILE, torch.randn(1, 14, 512, generator=torch.Generator().manual_seed(4))),
                              (GENERATOR_FILE, {"g_ema": generator, "args": argparse.Namespace(size=256)})):
        (directory / relative).parent.mkdir(parents=True, exist_ok=True)
        torch.save(payload, directory / relative)
    return directory


def test_load_paper_checkpoints(paper_dir):
    transformer, decoder = load_paper_checkpoints(paper_dir, backbone="r50")
    mean = torch.load(paper_dir / MEAN_WPLUS_FILE, weights_only=True)[0]
    assert decoder.latent_shape == (14, 512) and decoder.size == 256
    assert torch.equal(transformer.mean_latent, mean) and torch.equal(decoder.mean_latent, mean)
    assert torch.equal(transformer.mapping[0].weight, torch.load(paper_dir / MAPPER_FILES["r50"])["mapping.0.weight"])

    with torch.no_grad():  # the whole recovery path once at 256 px
        latents = transformer(torch.randn(1, 512, generator=torch.Generator().manual_seed(6)))
        images = decoder(latents)
    assert latents.shape == (1, 14, 512) and images.shape == (1, 3, 256, 256)
    assert images.min() >= 0 and images.max() <= 1


def test_load_paper_checkpoints_flat_directory(paper_dir, tmp_path):
    # files side by side (downloads are often flattened); mean W+ as [14, 512]
    for relative in (MAPPER_FILES["r50"], GENERATOR_FILE):
        (tmp_path / Path(relative).name).symlink_to(paper_dir / relative)
    torch.save(torch.zeros(14, 512), tmp_path / MEAN_WPLUS_FILE)
    transformer, decoder = load_paper_checkpoints(tmp_path)
    assert torch.equal(decoder.mean_latent, torch.zeros(14, 512))

    with pytest.raises(PaperCheckpointsMissing, match=r"missing ckpts/delta_256/id_delta_gc_rm_mb.pth \("):
        load_paper_checkpoints(tmp_path, backbone="mb")
    (tmp_path / Path(GENERATOR_FILE).name).unlink()
    (tmp_path / MEAN_WPLUS_FILE).unlink()
    with pytest.raises(PaperCheckpointsMissing, match="missing mean_wplus.pth, checkpoint/550000.pt"):
        load_paper_checkpoints(tmp_path)
    with pytest.raises(ValueError, match="unknown backbone"):
        load_paper_checkpoints(tmp_path, backbone="r100")
