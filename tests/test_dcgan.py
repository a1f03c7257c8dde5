"""The DCGAN decoder (`dcgan-digiface`) and differentiable crops of its faces (explainer.generation.crop)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from explainer import assets, faces
from explainer.faces.align import warp
from explainer.generation.crop import crop_matrix, crop_to
from explainer.generation.dcgan import TEMPLATE_SPREAD, TEMPLATES, DCGANDecoder, measure_templates
from explainer.recognition.base import ARCFACE_112
from explainer.recognition.dlib_resnet import DLIB_CHIP_150
from explainer.recognition.registry import load_recognizer


@pytest.fixture(scope="module")
def decoder() -> DCGANDecoder:
    return DCGANDecoder()


@pytest.fixture(scope="module")
def sample_images(decoder) -> torch.Tensor:
    """Eight decoder faces, quantised to 8 bits so cv2 and torch warp exactly the same pixels."""
    with torch.no_grad():
        images = decoder(decoder.sample_latents(8, torch.Generator().manual_seed(3)))
    return (images * 255).round() / 255


def _uint8(images: torch.Tensor) -> np.ndarray:
    return (images * 255).round().byte().permute(0, 2, 3, 1).numpy()


def _landmarks(points: dict[str, np.ndarray]) -> faces.Landmarks:
    box = faces.FaceBox(0.0, 0.0, 64.0, 64.0, 1.0, "template")
    return faces.Landmarks(box=box, dlib5=points["dlib5"], points68=np.zeros((68, 2)), arcface5=points["arcface5"])


# -- the decoder ---------------------------------------------------------------------------------

def test_loads_strictly_with_weights_only():
    state = torch.load(assets.path("dcgan-digiface"), map_location="cpu", weights_only=True)["netG_state_dict"]
    DCGANDecoder(state)
    missing = {k: v for k, v in state.items() if k != "main.4.running_var"}
    with pytest.raises(RuntimeError, match="Missing key"):
        DCGANDecoder(missing)
    with pytest.raises(RuntimeError, match="Unexpected key"):
        DCGANDecoder({**state, "main.13.weight": torch.zeros(3)})


def test_contract_shapes_range_and_prior(decoder):
    assert decoder.latent_shape == (1, 100) and decoder.size == 64
    assert torch.equal(decoder.mean_latent, torch.zeros(1, 100))
    latents = decoder.sample_latents(2000, torch.Generator().manual_seed(0))
    assert latents.shape == (2000, 1, 100)
    assert abs(latents.mean().item()) < 0.01 and abs(latents.std().item() - 1) < 0.01  # N(0, I)
    with torch.no_grad():
        images = decoder(latents[:4])
    assert images.shape == (4, 3, 64, 64) and images.dtype == torch.float32
    assert images.min() >= 0 and images.max() <= 1
    assert images.std() > 0.1  # faces, not a flat image
    with pytest.raises(ValueError, match="expected latents"):
        decoder(torch.zeros(4, 100))
    assert not any(p.requires_grad for p in decoder.parameters())


def test_deterministic_and_batch_independent(decoder):
    latents = decoder.sample_latents(8, torch.Generator().manual_seed(1))
    decoder.train()  # must stay in eval mode: batch statistics would mix faces of one batch
    assert not decoder.training and not any(m.training for m in decoder.modules())
    with torch.no_grad():
        batch = decoder(latents)
        again = decoder(latents)
        alone = torch.cat([decoder(latents[k:k + 1]) for k in range(8)])
    assert torch.equal(batch, again)
    torch.testing.assert_close(alone, batch, atol=1e-5, rtol=0)


def test_templates_reproduce_from_a_fresh_measurement(decoder):
    measured = measure_templates(decoder, n=200, seed=1)
    assert measured["found"] >= 0.8 * 200  # the stored constants came from 90% of 2000
    for scheme in ("arcface5", "dlib5"):
        stored = np.asarray(TEMPLATES[scheme])
        spread = np.asarray(TEMPLATE_SPREAD[scheme])
        # Four standard errors of a mean over `found` faces (plus the stored mean's own, ~0.05 px).
        tolerance = 4 * spread / np.sqrt(measured["found"]) + 0.1
        error = np.abs(measured["templates"][scheme] - stored)
        assert (error <= tolerance).all(), (scheme, error.round(2), tolerance.round(2))
        np.testing.assert_allclose(measured["std"][scheme], spread, rtol=0.35)


# -- crops ---------------------------------------------------------------------------------------

def test_crop_agrees_with_cv2_alignment(sample_images):
    pixels = _uint8(sample_images)
    points = {s: np.asarray(TEMPLATES[s]) for s in TEMPLATES}
    for crop in (ARCFACE_112, DLIB_CHIP_150):
        ours = crop_to(sample_images.double(), TEMPLATES, crop).permute(0, 2, 3, 1).numpy() * 255
        assert ours.shape == (8, crop.size, crop.size, 3)
        matrix = crop_matrix(TEMPLATES, crop)
        if crop.method == "similarity":
            reference = np.stack([faces.align(p, _landmarks(points), crop) for p in pixels])
        else:  # faces.align would call dlib for this method; the cv2 warp of the same transform:
            reference = np.stack([warp(p, matrix, crop.size) for p in pixels])
        error = np.abs(ours - reference)
        # cv2 rounds its bilinear weights to 1/32 and its output to integers: a few levels at edges.
        assert error.max() <= 5 and error.mean() <= 0.5, (crop.method, error.max(), error.mean())
        # The pixel-centre convention matters: half a pixel off is clearly worse.
        shifted = matrix + np.array([[0, 0, 0.5], [0, 0, 0.5]])
        off = np.stack([warp(p, shifted, crop.size) for p in pixels])
        assert np.abs(ours - off).mean() > 3 * error.mean()


def test_dlib_chip_crop_matches_dlib_get_face_chip(sample_images):
    """dlib's own chip (get_face_chip on the template points) lands where ours does.

    dlib needs integer points, so the decoder faces are enlarged 4x first (points off by <= 1/8 px)."""
    points = {s: (np.asarray(TEMPLATES[s]) + 0.5) * 4 - 0.5 for s in TEMPLATES}
    ours = crop_to(sample_images, TEMPLATES, DLIB_CHIP_150).permute(0, 2, 3, 1).numpy() * 255
    for k, pixels in enumerate(_uint8(sample_images)):
        enlarged = cv2.resize(pixels, (256, 256), interpolation=cv2.INTER_CUBIC)
        chip = faces.align(enlarged, _landmarks(points), DLIB_CHIP_150).astype(np.float64)
        # Bicubic + dlib's bilinear vs our bilinear: close, not equal; a misplaced chip is far worse.
        assert np.abs(chip - ours[k])[10:140, 10:140].mean() < 3.0


def test_gradients_reach_the_latent(decoder):
    recognizer = load_recognizer("dlib-resnet")
    latents = decoder.sample_latents(2, torch.Generator().manual_seed(2)).requires_grad_(True)
    crops = crop_to(decoder(latents), decoder.templates, recognizer.crop)
    assert crops.shape == (2, 3, 150, 150)
    embeddings = recognizer(crops)
    embeddings.square().sum().backward()
    assert latents.grad is not None and torch.isfinite(latents.grad).all()
    assert (latents.grad.abs().sum(dim=(1, 2)) > 0).all()
    assert all(p.grad is None for p in decoder.parameters())


def test_crop_rejects_bad_input():
    with pytest.raises(ValueError, match="expected images"):
        crop_to(torch.zeros(3, 64, 64), TEMPLATES, ARCFACE_112)
    with pytest.raises(ValueError, match="no 'dlib5' template"):
        crop_to(torch.zeros(1, 3, 64, 64), {"arcface5": TEMPLATES["arcface5"]}, DLIB_CHIP_150)
