"""ONNX models as PyTorch recognizers: equal to onnxruntime, batch-agnostic, differentiable."""
from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from explainer import assets
from explainer.recognition.base import ARCFACE_112
from explainer.recognition.faceplugin import load_faceplugin_r
from explainer.recognition.onnx_backed import (
    INSIGHTFACE_ARCFACE,
    OnnxModelError,
    OnnxPreprocessing,
    OnnxRecognizer,
)
from explainer.recognition.reference import onnxruntime_faceplugin


def _to_tensor(crops: np.ndarray) -> torch.Tensor:
    """uint8 RGB [N, H, W, 3] to the Recognizer input: float [N, 3, H, W] in [0, 1]."""
    return torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255.0


def _ort_one_at_a_time(session: ort.InferenceSession, x: np.ndarray) -> np.ndarray:
    """onnxruntime on a graph whose batch size is fixed at 1."""
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))])


# -- faceplugin-r --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def faceplugin() -> OnnxRecognizer:
    return load_faceplugin_r()


def test_faceplugin_matches_onnxruntime(faceplugin, real_crops_112):
    with torch.no_grad():
        ours = faceplugin(_to_tensor(real_crops_112)).numpy()
    # Upstream's own preprocessing (lib/fr_feature.js), done independently of ours.
    reference = onnxruntime_faceplugin(real_crops_112)
    assert ours.shape == (len(real_crops_112), 512) == reference.shape
    assert np.abs(ours - reference).max() <= 1e-4


def test_faceplugin_is_batch_independent(faceplugin, real_crops_112):
    crops = _to_tensor(real_crops_112[:8])
    with torch.no_grad():
        together = faceplugin(crops)
        alone = torch.cat([faceplugin(crops[i:i + 1]) for i in range(len(crops))])
        reversed_order = faceplugin(crops.flip(0)).flip(0)
    torch.testing.assert_close(together, alone, rtol=0, atol=1e-5)
    torch.testing.assert_close(together, reversed_order, rtol=0, atol=1e-5)


def test_gradients_reach_the_pixels(faceplugin, real_crops_112):
    crops = _to_tensor(real_crops_112[:4]).requires_grad_(True)
    embeddings = faceplugin(crops)
    faceplugin.similarity(embeddings[:2], embeddings[2:]).sum().backward()
    assert crops.grad is not None and torch.isfinite(crops.grad).all()
    assert (crops.grad.flatten(1).abs().sum(1) > 0).all(), "every crop should get a gradient"
    assert all(p.grad is None for p in faceplugin.parameters()), "the network's weights stay frozen"


def _orl_chip(person: int, shot: int) -> np.ndarray:
    import dlib
    from PIL import Image

    photo = np.asarray(Image.open(assets.path("orl") / f"s{person}" / f"{shot}.pgm").convert("RGB"))
    # Upsample 1 as conftest does; the score threshold is relaxed because s1/2.pgm scores just below
    # the default 0 (-0.19), and we want the best box even then.
    boxes, scores, _ = dlib.get_frontal_face_detector().run(photo, 1, -0.5)
    box = boxes[int(np.argmax(scores))]
    shape = dlib.shape_predictor(str(assets.path("dlib-shape5")))(photo, box)
    return dlib.get_face_chip(photo, shape, size=112, padding=0.1)


def test_faceplugin_same_person_scores_higher(faceplugin):
    chips = np.stack([_orl_chip(1, 1), _orl_chip(1, 2), _orl_chip(2, 1)])
    with torch.no_grad():
        first, same, other = faceplugin(_to_tensor(chips))
    assert faceplugin.similarity(first, same) > faceplugin.similarity(first, other)


# -- the generic path, on a model exported here --------------------------------------------------

class _TinyFaceNet(nn.Module):
    """A small CNN with the layers face models use; flattened with a reshape, as exporters see it."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.PReLU(16), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.PReLU(32), nn.AvgPool2d(2),
        )
        self.head = nn.Linear(32 * 7 * 7, 64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        return self.head(x.reshape(x.shape[0], -1))


def _tiny_net() -> _TinyFaceNet:
    torch.manual_seed(0)
    net = _TinyFaceNet()
    with torch.no_grad():  # non-trivial statistics, so a mistake in BatchNorm would show
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return net.eval()


def _export(net: nn.Module, path: Path, dynamic_batch: bool) -> Path:
    """Export at batch 1: fixed (BatchNormalization kept, Reshape to a constant [1, -1]) or dynamic."""
    options = ({"dynamic_axes": {"image": {0: "batch"}, "embedding": {0: "batch"}}} if dynamic_batch
               else {"training": torch.onnx.TrainingMode.PRESERVE})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        # dynamo=False: the TorchScript exporter needs no onnxscript, which is not installed. Opset 17:
        # onnx2torch 1.5 lacks some ops at the newest opsets (Reshape 19+, for one).
        torch.onnx.export(net, (torch.rand(1, 3, 112, 112),), str(path), dynamo=False, opset_version=17,
                          input_names=["image"], output_names=["embedding"], **options)
    return path


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("tiny_onnx")
    net = _tiny_net()
    return {kind: _export(net, folder / f"{kind}.onnx", dynamic_batch=kind == "dynamic")
            for kind in ("fixed", "dynamic")}


@pytest.mark.parametrize("kind", ["fixed", "dynamic"])
def test_generic_model_matches_onnxruntime(tiny_onnx, kind, real_crops_112):
    path = tiny_onnx[kind]
    if kind == "fixed":
        batch = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim[0]
        assert batch.dim_value == 1, "the export should fix the batch at 1, the case we rewrite"
        graph = onnx.load(str(path)).graph
        constants = {node.output[0] for node in graph.node if node.op_type == "Constant"}
        assert any(node.op_type == "Reshape" and node.input[1] in constants for node in graph.node), \
            "the export should flatten with a Reshape to a constant shape, the case we rewrite"
    recognizer = OnnxRecognizer(path, name=f"tiny-{kind}", preprocessing=INSIGHTFACE_ARCFACE)
    assert recognizer.embedding_dim == 64 and not recognizer.training
    recognizer.train()
    assert not recognizer.network.training, "BatchNorm must keep its running statistics"

    crops = _to_tensor(real_crops_112)
    with torch.no_grad():
        ours = recognizer(crops).numpy()
        three = recognizer(crops[:3]).numpy()  # another batch size again
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    reference = _ort_one_at_a_time(session, ((crops * 255 - 127.5) / 127.5).numpy())
    assert np.abs(ours - reference).max() <= 1e-5
    assert np.abs(three - reference[:3]).max() <= 1e-5


def test_bgr_preprocessing_flips_channels(tiny_onnx, real_crops_112):
    rgb = OnnxRecognizer(tiny_onnx["dynamic"], name="tiny-rgb", preprocessing=INSIGHTFACE_ARCFACE)
    bgr = OnnxRecognizer(tiny_onnx["dynamic"], name="tiny-bgr",
                         preprocessing=replace(INSIGHTFACE_ARCFACE, channel_order="BGR"))
    crops = _to_tensor(real_crops_112[:2])
    with torch.no_grad():
        torch.testing.assert_close(bgr(crops), rgb(crops.flip(1)))


# -- clear errors ----------------------------------------------------------------------------------

def test_not_an_onnx_file(tmp_path):
    fake = tmp_path / "model.onnx"
    fake.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(OnnxModelError, match="not an ONNX model"):
        OnnxRecognizer(fake, name="fake", preprocessing=INSIGHTFACE_ARCFACE)
    text = tmp_path / "notes.onnx"
    text.write_text("this is not a network\n")
    with pytest.raises(OnnxModelError, match="not an ONNX model"):
        OnnxRecognizer(text, name="text", preprocessing=INSIGHTFACE_ARCFACE)


def test_wrong_input_size(tiny_onnx):
    size = 96
    scale = size / ARCFACE_112.size
    crop_96 = replace(ARCFACE_112, size=size,
                      template=tuple((x * scale, y * scale) for x, y in ARCFACE_112.template))
    with pytest.raises(OnnxModelError, match=r"expected \[N, 3, 96, 96\]"):
        OnnxRecognizer(tiny_onnx["fixed"], name="tiny", preprocessing=OnnxPreprocessing(size=size),
                       crop=crop_96)
    with pytest.raises(ValueError, match="crop is 112px but the model input is 96px"):
        OnnxRecognizer(tiny_onnx["fixed"], name="tiny", preprocessing=OnnxPreprocessing(size=size))


def test_unsupported_ops_are_named(tmp_path):
    helper = onnx.helper
    image = helper.make_tensor_value_info("image", onnx.TensorProto.FLOAT, [1, 3, 112, 112])
    out = helper.make_tensor_value_info("out", onnx.TensorProto.FLOAT, [1, 3, 112, 112])
    graph = helper.make_graph([helper.make_node("Hardmax", ["image"], ["out"], axis=1)], "g", [image], [out])
    path = tmp_path / "hardmax.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    with pytest.raises(OnnxModelError, match=r"cannot convert these ops: Hardmax \(opset 13\)"):
        OnnxRecognizer(path, name="hardmax", preprocessing=INSIGHTFACE_ARCFACE)
