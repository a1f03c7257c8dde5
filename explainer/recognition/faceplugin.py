"""faceplugin-r: the face recognizer of npm faceplugin-face-recognition-js@0.0.1 (model/fr_feature.onnx).

A MobileFaceNet-style network (Conv + PReLU + residual Add, ONNX opset 9): 112x112 RGB in, 512-D out.
What upstream does, read from the package's lib/fr_feature.js:
 - alignment: an affine from three points (eye centres, nose tip) onto the ArcFace 112x112 template;
   our ARCFACE_112 crop (a similarity over five points) puts the face in the same frame;
 - preprocessing: RGB, (p - 127) / 128, NCHW;
 - matching (`matchFeature`): subtracts the element-wise mean of the two features from each before a
   cosine. That makes the two centred vectors exact negatives of each other ((a - b) / 2 and
   (b - a) / 2), so upstream's score is -1 for every pair: it carries no information. We use plain
   cosine similarity, and no upstream threshold is known.
"""
from __future__ import annotations

from pathlib import Path

from explainer import assets
from explainer.recognition.base import ARCFACE_112, Metric
from explainer.recognition.onnx_backed import OnnxPreprocessing, OnnxRecognizer

NAME = "faceplugin-r"
ASSET = "faceplugin-feature"
# Upstream: (p - 127) / 128 on RGB, not insightface's 127.5.
FACEPLUGIN_PREPROCESSING = OnnxPreprocessing(size=112, mean=(127.0,) * 3, std=(128.0,) * 3,
                                             channel_order="RGB")


def load_faceplugin_r(model_path: str | Path | None = None) -> OnnxRecognizer:
    """The faceplugin-r recognizer in eval mode; `model_path` defaults to the fetched asset."""
    return OnnxRecognizer(
        model_path if model_path is not None else assets.path(ASSET),
        name=NAME,
        preprocessing=FACEPLUGIN_PREPROCESSING,
        metric=Metric("cosine"),
        crop=ARCFACE_112,
        upstream_threshold=None,
    )
