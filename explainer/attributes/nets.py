"""The attribute networks run batched: ONNX graphs (faceplugin's, 3DDFA_V2's, the dlib age net) in
onnxruntime, many faces per call.

Most of these graphs were exported with batch size 1; each is made batch-dynamic once
(recognition.onnx_backed.make_batch_dynamic) and then run over chunks of CHUNK faces. A face's outputs
are bit-identical whatever else shares its chunk and whatever the thread count
(tests/test_attribute_nets.py checks it), so splitting photos over processes (analysis.py under
torchrun) changes no result. onnx2torch conversions were measured too: 1.7-2x slower on CPU than
onnxruntime and not batch-independent, so onnxruntime stays the runtime here.
"""
from __future__ import annotations

import os
from functools import lru_cache

import numpy as np

from explainer import assets

CHUNK = 4  # faces per onnxruntime call: measured faster than 1 or 16 (16 at 224 px misses the caches)


def threads() -> int:
    """Intra-op threads for the attribute nets: FACEXPLAIN_ATTRIBUTE_THREADS, else this process's share
    of the cores it may use (torchrun's LOCAL_WORLD_SIZE processes share a machine), at most 4. Results
    do not depend on it."""
    wanted = os.environ.get("FACEXPLAIN_ATTRIBUTE_THREADS")
    if wanted:
        return max(1, int(wanted))
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(4, available // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))


def _constant_weights(proto) -> None:
    """Drop graph inputs that are initializers (fr_age.onnx lists all 104 of its weights as inputs).
    onnxruntime treats such weights as overridable, so it cannot fold batch norms into convolutions or
    pre-pack them: SSR-Net ran about twice as slow. Only fp32 rounding changes (ages by < 1e-4 years)."""
    weights = {initializer.name for initializer in proto.graph.initializer}
    kept = [value for value in proto.graph.input if value.name not in weights]
    if len(kept) < len(proto.graph.input):
        del proto.graph.input[:]
        proto.graph.input.extend(kept)


@lru_cache(maxsize=None)
def session(asset: str):
    """A batch-dynamic onnxruntime session of an ONNX asset (loaded once per process)."""
    import onnx
    import onnxruntime as ort

    from explainer.recognition.onnx_backed import make_batch_dynamic

    proto = onnx.load(str(assets.path(asset)))
    _constant_weights(proto)
    first = proto.graph.input[0].type.tensor_type.shape.dim[0]
    if first.HasField("dim_value") and first.dim_value == 1:
        proto = make_batch_dynamic(proto, 1)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads()
    options.inter_op_num_threads = 1
    # No busy-waiting between calls: the per-face work in between is ours, and shared machines suffer.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])


def run(asset: str, inputs: np.ndarray, outputs: list[str] | None = None) -> list[np.ndarray]:
    """The network's outputs for float32 NCHW `inputs` [B, ...], each [B, ...], computed CHUNK faces at a
    time. An empty batch gives empty outputs of the right trailing shape."""
    net = session(asset)
    name = net.get_inputs()[0].name
    inputs = np.ascontiguousarray(inputs, np.float32)
    if len(inputs) == 0:
        probe = net.run(outputs, {name: np.zeros((1, *inputs.shape[1:]), np.float32)})
        return [np.zeros((0, *p.shape[1:]), p.dtype) for p in probe]
    parts = [net.run(outputs, {name: inputs[k:k + CHUNK]}) for k in range(0, len(inputs), CHUNK)]
    return [np.concatenate([part[i] for part in parts]) for i in range(len(parts[0]))]
