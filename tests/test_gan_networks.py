"""The StyleGAN2 discriminator and the paper's guide encoder in tiny CPU configurations.

(Their full-size layouts load the compat manifests strictly: tests/test_checkpoints.py.)
"""
from __future__ import annotations

import pytest
import torch

from explainer.generation.guide_encoder import GuideEncoder, load_guide_encoder
from explainer.generation.stylegan2 import CheckpointError
from explainer.generation.stylegan2_discriminator import (
    StyleGAN2Discriminator, load_discriminator, minibatch_stddev)

TINY_GUIDE = dict(code_dim=16, width=8, blocks=(1, 1, 1, 1), input_size=64)


def test_minibatch_stddev_groups_samples_b_and_b_plus_batch_over_group():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(8, 3, 2, 2, generator=generator)
    x[2] = x[4] = x[6] = x[0]  # group 0 is {0, 2, 4, 6} (group size 4 over a batch of 8): no spread
    out = minibatch_stddev(x)
    assert out.shape == (8, 4, 2, 2) and torch.equal(out[:, :3], x)
    assert torch.allclose(out[0::2, 3], torch.full((4, 2, 2), 1e-4), atol=1e-6)  # sqrt(0 + 1e-8)
    expected = x[1::2].var(dim=0, unbiased=False).add(1e-8).sqrt().mean()
    torch.testing.assert_close(out[1::2, 3], expected.expand(4, 2, 2))
    with pytest.raises(ValueError, match="batch 6 is not divisible by its group size 4"):
        minibatch_stddev(torch.zeros(6, 3, 2, 2))


def test_tiny_discriminator_forward_backward_and_reload():
    torch.manual_seed(0)
    discriminator = StyleGAN2Discriminator(16, channel_max=32)
    assert [block.conv2[1].weight.shape[0] for block in discriminator.convs[1:]] == [32, 32]  # 16 -> 8 -> 4
    images = (torch.rand(4, 3, 16, 16) * 2 - 1).requires_grad_(True)
    logits = discriminator(images)
    assert logits.shape == (4, 1) and torch.isfinite(logits).all()
    logits.sum().backward()  # R1 needs gradients w.r.t. the images
    assert torch.isfinite(images.grad).all() and images.grad.abs().sum() > 0

    state = discriminator.state_dict()
    for wrapped in ({"d": state, "g": {}}, {f"module.{k}": v for k, v in state.items()}):
        again = load_discriminator(wrapped, size=16)
        assert again.config == discriminator.config
        torch.testing.assert_close(again(images.detach()), logits.detach())
    with pytest.raises(CheckpointError, match="a 16 px discriminator, not 32 px"):
        load_discriminator(state, size=32)
    with pytest.raises(CheckpointError, match="not a rosinality StyleGAN2 discriminator"):
        load_discriminator({"style.1.weight": torch.zeros(2, 2)})
    with pytest.raises(ValueError, match=r"expected images \[B, 3, 16, 16\]"):
        discriminator(torch.zeros(4, 3, 32, 32))


def test_tiny_guide_encoder():
    torch.manual_seed(0)
    mean = torch.randn(14, 16)
    encoder = GuideEncoder(mean_latent=mean, **TINY_GUIDE).eval()
    images = torch.rand(2, 3, 32, 32, requires_grad=True)  # resized to input_size (64) inside
    latents = encoder(images)
    assert latents.shape == (2, 14, 16) and torch.isfinite(latents).all()
    # each code is mean + 2 tanh(...): within 2 of the mean
    assert ((latents - mean).abs() <= 2).all() and not torch.allclose(latents, mean.expand(2, 14, 16))
    latents.square().sum().backward()
    assert torch.isfinite(images.grad).all() and images.grad.abs().sum() > 0

    with torch.no_grad():  # heads that output zero deltas give the mean latent itself
        for level in (encoder.mapping1, encoder.mapping2, encoder.mapping3):
            for head in level:
                head.convs[-2].weight.zero_()
                head.convs[-2].bias.zero_()
        torch.testing.assert_close(encoder(images), mean.expand(2, 14, 16))

    again = load_guide_encoder({"state_dict": {f"module.{k}": v for k, v in encoder.state_dict().items()}})
    assert again.config == encoder.config and not again.training
    torch.testing.assert_close(again(images.detach()), encoder(images.detach()))
    with pytest.raises(ValueError, match="power of two >= 64"):
        GuideEncoder(input_size=48)
    with pytest.raises(ValueError, match="does not fit"):
        encoder.set_mean_latent(torch.zeros(12, 16))
