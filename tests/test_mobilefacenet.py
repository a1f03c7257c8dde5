"""MobileFaceNet (TFLite) in PyTorch: equal to the LiteRT reference runtime, batch-independent,
differentiable, and strict about what it converts."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from explainer import assets
from explainer.recognition import reference
from explainer.recognition.mobilefacenet import (MobileFaceNet, load_mobilefacenet,
                                                 state_dict_from_tflite)
from explainer.recognition.tflite_graph import (Operator, TensorSpec, TFLiteFormatError, TFLiteGraph,
                                                UnsupportedTFLiteOp, dequantise, lower, same_padding)

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def model() -> MobileFaceNet:
    return load_mobilefacenet()


@pytest.fixture(scope="module")
def litert():
    """The LiteRT reference runtime on the original file (raw outputs, before L2)."""
    return lambda faces: reference.litert_mobilefacenet(faces, normalise=False)


def _crops(faces: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(faces).permute(0, 3, 1, 2).float() / 255.0


def test_matches_litert_on_real_faces(model, litert, real_crops_112):
    expected = litert(real_crops_112)
    crops = _crops(real_crops_112)
    with torch.no_grad():
        raw = model.embed_raw(crops).numpy()
        unit = model(crops).numpy()
    reference_unit = expected / np.maximum(np.linalg.norm(expected, axis=1, keepdims=True), 1e-10)
    raw_diff = float(np.abs(raw - expected).max())
    unit_diff = float(np.abs(unit - reference_unit).max())
    print(f"\nmobilefacenet vs LiteRT on {len(crops)} faces: max |raw diff| {raw_diff:.2e} "
          f"(outputs up to {np.abs(expected).max():.1f}), max |L2-normalised diff| {unit_diff:.2e}")
    assert raw.shape == (len(crops), 192)
    assert raw_diff <= TOLERANCE
    assert unit_diff <= TOLERANCE
    assert np.allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-5)


def test_batch_independent(model, real_crops_112):
    crops = _crops(real_crops_112)
    with torch.no_grad():
        batched = model(crops)
        single = torch.cat([model(crops[i: i + 1]) for i in range(len(crops))])
    assert torch.allclose(batched, single, atol=1e-5, rtol=0)


def test_gradients_reach_pixels(model, real_crops_112):
    crops = _crops(real_crops_112[:2]).requires_grad_()
    embeddings = model(crops)
    model.similarity(embeddings[0:1], embeddings[1:2]).sum().backward()
    assert crops.grad is not None and torch.isfinite(crops.grad).all()
    assert (crops.grad[0].abs() > 0).float().mean() > 0.5  # most pixels of both faces matter
    assert (crops.grad[1].abs() > 0).float().mean() > 0.5


def test_contract(model):
    assert (model.name, model.embedding_dim, model.metric.name) == ("mobilefacenet", 192, "euclidean")
    assert model.threshold.value == pytest.approx(0.8 ** 0.5)
    with pytest.raises(ValueError, match="112x112"):
        model(torch.zeros(1, 3, 96, 96))


def test_cached_state_dict_round_trip(model, tmp_path, real_crops_112):
    cached = tmp_path / "mobilefacenet.pt"
    torch.save(state_dict_from_tflite(assets.path("mobilefacenet-tflite")), cached)
    reloaded = load_mobilefacenet(cached)
    crops = _crops(real_crops_112[:2])
    with torch.no_grad():
        assert torch.equal(reloaded(crops), model(crops))


def test_rejects_a_file_that_is_not_tflite(tmp_path):
    not_tflite = tmp_path / "model.tflite"
    not_tflite.write_bytes(b"\x08\x01\x12\x04onnx" + bytes(64))
    with pytest.raises(TFLiteFormatError, match="not a TFLite model"):
        state_dict_from_tflite(not_tflite)
    with pytest.raises(TFLiteFormatError, match="not a TFLite model"):
        state_dict_from_tflite(assets.path("dlib-shape5"))


def test_unsupported_op_fails_clearly():
    features = TensorSpec(0, "x", (1, 4, 4, 8), "FLOAT32", None)
    pooled = TensorSpec(1, "y", (1, 2, 2, 8), "FLOAT32", None)
    graph = TFLiteGraph((features, pooled), (Operator(0, "MAX_POOL_2D", (0,), (1,)),), (0,), (1,))
    with pytest.raises(UnsupportedTFLiteOp, match="op 0.*MAX_POOL_2D"):
        lower(graph)


def test_tflite_same_padding_is_asymmetric():
    assert same_padding(112, 3, 2) == (0, 1)  # the odd pixel goes bottom/right, unlike PyTorch
    assert same_padding(56, 3, 1) == (1, 1)
    assert same_padding(7, 7, 1) == (3, 3)


def test_dequantise():
    per_tensor = dequantise(np.array([0, 10, 20], np.uint8), "UINT8", np.array([0.5]), np.array([10]))
    assert per_tensor.dtype == np.float32 and per_tensor.tolist() == [-5.0, 0.0, 5.0]
    per_channel = dequantise(np.array([[1, 1], [1, 1]], np.int8), "INT8", np.array([1.0, 2.0]), None, axis=0)
    assert per_channel.tolist() == [[1.0, 1.0], [2.0, 2.0]]
    assert dequantise(np.array([1.5], np.float16), "FLOAT16").dtype == np.float32


def _orl_chip(name: str) -> np.ndarray:
    """An ORL face aligned as in conftest (dlib chip, 112 px, padding 0.1)."""
    import dlib
    from PIL import Image

    photo = np.asarray(Image.open(assets.path("orl") / f"{name}.pgm").convert("RGB"))
    detector = dlib.get_frontal_face_detector()
    # s1/2 is only found with two upsamplings (the faces are 92x112 pixels in all).
    boxes = detector(photo, 1) or detector(photo, 2)
    predictor = dlib.shape_predictor(str(assets.path("dlib-shape5")))
    return dlib.get_face_chip(photo, predictor(photo, boxes[0]), size=112, padding=0.1)


def test_same_person_closer_than_different_people(model):
    faces = np.stack([_orl_chip(name) for name in ("s1/1", "s1/2", "s2/1", "s3/1")])
    with torch.no_grad():
        e = model(_crops(faces))
    genuine = model.similarity(e[0], e[1])
    impostors = torch.stack([model.similarity(e[i], e[j]) for i in (0, 1) for j in (2, 3)])
    print(f"\nORL: same person {genuine:.3f}, different people {impostors.min():.3f}..{impostors.max():.3f}")
    assert genuine < impostors.min()
    assert model.matches(e[0:1], e[1:2]).item()
