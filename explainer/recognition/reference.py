"""The upstream models run on their own reference runtimes (dlib, LiteRT, onnxruntime).

These are the ground truth our PyTorch ports are checked against. Each takes uint8 RGB crops
[N, S, S, 3] already aligned to the model's frame and applies the upstream pre/post-processing as the
upstream code does it, written out here independently of the ports' `normalise`.
"""
from __future__ import annotations

import functools

import numpy as np

from explainer import assets


@functools.lru_cache(maxsize=None)
def _dlib_model():
    import dlib

    return dlib.face_recognition_model_v1(str(assets.path("dlib-resnet")))


def dlib_descriptors(chips: np.ndarray) -> np.ndarray:
    """dlib's C++ descriptor of 150x150 chips made as dlib.get_face_chip makes them."""
    return np.array(_dlib_model().compute_face_descriptor([np.ascontiguousarray(c) for c in chips]),
                    dtype=np.float32)


@functools.lru_cache(maxsize=None)
def _litert_interpreter():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as err:
        raise ImportError("the LiteRT reference runtime needs `pip install ai-edge-litert` "
                          "(part of facexplain[test])") from err
    interpreter = Interpreter(model_path=str(assets.path("mobilefacenet-tflite")))
    interpreter.allocate_tensors()
    return interpreter


def litert_mobilefacenet(crops: np.ndarray, normalise: bool = True) -> np.ndarray:
    """MobileFaceNet.tflite as the expo app runs it: (p - 127.5) / 128, NHWC, then L2-normalised.

    The model's input is fixed at a batch of 2, so crops go through in pairs (the last one padded).
    """
    interpreter = _litert_interpreter()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    batch = int(inp["shape"][0])
    x = (crops.astype(np.float32) - 127.5) / 128.0
    outputs = []
    for k in range(0, len(x), batch):
        chunk = x[k:k + batch]
        padded = np.concatenate([chunk, np.zeros((batch - len(chunk),) + chunk.shape[1:], np.float32)])
        interpreter.set_tensor(inp["index"], padded)
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(out["index"])[: len(chunk)].copy())
    raw = np.concatenate(outputs)
    if not normalise:
        return raw
    return raw / np.maximum(np.linalg.norm(raw, axis=1, keepdims=True), 1e-10)


@functools.lru_cache(maxsize=None)
def _onnx_session(path: str):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def onnxruntime_faceplugin(crops: np.ndarray) -> np.ndarray:
    """fr_feature.onnx as faceplugin's fr_feature.js runs it: RGB, (p - 127) / 128, NCHW, batch 1."""
    session = _onnx_session(str(assets.path("faceplugin-feature")))
    x = ((crops.astype(np.float32) - 127.0) / 128.0).transpose(0, 3, 1, 2)
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: x[k:k + 1]})[0] for k in range(len(x))])
