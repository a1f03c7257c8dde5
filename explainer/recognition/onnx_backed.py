"""ONNX face-recognition models as differentiable PyTorch recognizers.

A user's ONNX model (an insightface ``w600k_r50.onnx``, say) is converted to a ``torch.fx`` module by
onnx2torch, so attacks can take gradients through it; `OnnxPreprocessing` says how the model wants
its pixels. Example, for any insightface ArcFace model::

    recognizer = OnnxRecognizer("w600k_r50.onnx", name="arcface-r50", preprocessing=INSIGHTFACE_ARCFACE)

Models exported with a fixed batch size of 1 (common: tracing exporters fold ``x.view(x.size(0), -1)``
into a constant ``Reshape`` to ``[1, -1]``) are made batch-agnostic before conversion, and a load-time
check confirms that a batch gives the same embeddings as its samples one at a time.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from onnx2torch import convert
from onnx2torch.node_converters import get_converter

from explainer.core.errors import InvalidSetting, MismatchError
from explainer.recognition.base import ARCFACE_112, CropSpec, Metric, Recognizer, Threshold

CHANNEL_ORDERS = ("RGB", "BGR")
_BATCH_DIM = "batch"  # the symbolic name given to a batch dimension we make dynamic
_FLOAT = onnx.TensorProto.FLOAT


class OnnxModelError(ValueError):
    """An ONNX file that cannot serve as a recognizer; the message says why."""


@dataclass(frozen=True)
class OnnxPreprocessing:
    """How a model wants its input: x = (pixel - mean) / std, pixels in 0..255, NCHW.

    `mean` and `std` are per channel of the network's input, i.e. in `channel_order` (for a BGR model
    the first entry applies to blue).
    """

    size: int = 112
    mean: tuple[float, float, float] = (127.5, 127.5, 127.5)
    std: tuple[float, float, float] = (127.5, 127.5, 127.5)
    channel_order: str = "RGB"

    def __post_init__(self) -> None:
        if self.channel_order not in CHANNEL_ORDERS:
            raise InvalidSetting(f"channel_order must be one of {CHANNEL_ORDERS}, got {self.channel_order!r}")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise InvalidSetting("mean and std need one value per channel (3 each)")
        if any(s <= 0 for s in self.std):
            raise InvalidSetting(f"std must be positive, got {self.std}")


# insightface's ArcFace recognizers (buffalo_l's w600k_r50.onnx, glintr100, ...): RGB 112x112,
# (p - 127.5) / 127.5, compared by cosine similarity. Use with crop=ARCFACE_112 (the default).
INSIGHTFACE_ARCFACE = OnnxPreprocessing(size=112, mean=(127.5,) * 3, std=(127.5,) * 3, channel_order="RGB")


# -- reading and checking the graph ---------------------------------------------------------------

def load_onnx(model: str | Path | onnx.ModelProto) -> onnx.ModelProto:
    """Parse an ONNX file (a copy is returned for a ModelProto), failing clearly on anything else."""
    if isinstance(model, onnx.ModelProto):
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        return copy
    model_path = Path(model)
    if not model_path.is_file():
        raise FileNotFoundError(f"no ONNX model at {model_path}")
    try:
        proto = onnx.load(str(model_path))
    except Exception as error:  # protobuf's DecodeError and friends: the bytes are not a model
        raise OnnxModelError(f"{model_path} is not an ONNX model ({type(error).__name__}: {error})") from None
    # Protobuf can parse some arbitrary bytes "successfully" into an empty message.
    if proto.ir_version <= 0 or not proto.graph.node or not proto.graph.output:
        raise OnnxModelError(f"{model_path} is not an ONNX model (no graph in it)")
    return proto


def _image_input(model: onnx.ModelProto) -> onnx.ValueInfoProto:
    """The graph's single real input (older exporters also list the weights as inputs)."""
    weights = {init.name for init in model.graph.initializer}
    inputs = [value for value in model.graph.input if value.name not in weights]
    if len(inputs) != 1:
        raise OnnxModelError(f"a recognizer has one image input; this graph has {[v.name for v in inputs]}")
    return inputs[0]


def _dims(value: onnx.ValueInfoProto) -> list[int | str | None]:
    """A value's shape: ints where fixed, the symbol (or None) where dynamic."""
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
            for d in value.type.tensor_type.shape.dim]


def check_image_input(model: onnx.ModelProto, size: int) -> int | None:
    """Check the input is float32 [N, 3, size, size]; return N where the graph fixes it, else None."""
    image = _image_input(model)
    dims = _dims(image)
    expected = f"[N, 3, {size}, {size}] float32 (NCHW)"
    if image.type.tensor_type.elem_type != _FLOAT:
        raise OnnxModelError(f"input {image.name!r} is not float32; expected {expected}")
    if len(dims) != 4:
        raise OnnxModelError(f"input {image.name!r} has shape {dims}; expected {expected}")
    channels, height, width = dims[1:]
    if channels != 3 or any(isinstance(d, int) and d != size for d in (height, width)):
        raise OnnxModelError(f"input {image.name!r} has shape {dims}; expected {expected}")
    return dims[0] if isinstance(dims[0], int) else None


def _convertible(domain: str, op_type: str, opset: int) -> bool:
    try:
        get_converter(domain=domain, operation_type=op_type, version=opset)
    except NotImplementedError:
        return False
    return True


def unsupported_ops(model: onnx.ModelProto) -> list[str]:
    """Ops that onnx2torch cannot convert, each named once with its opset.

    A standard op that onnx2torch knows at an older opset says so, since re-exporting the model at a
    lower opset then fixes it.
    """
    opsets = {entry.domain or "ai.onnx": entry.version for entry in model.opset_import}
    missing: dict[str, None] = {}
    for node in model.graph.node:
        domain = node.domain or "ai.onnx"
        opset = opsets.get(domain)
        if opset is not None and _convertible(node.domain, node.op_type, opset):
            continue
        if domain != "ai.onnx" or opset is None:
            missing[f"{domain}.{node.op_type}"] = None
            continue
        older = next((v for v in range(opset - 1, 0, -1) if _convertible(node.domain, node.op_type, v)), None)
        hint = f"; supported up to opset {older}" if older else ""
        missing[f"{node.op_type} (opset {opset}{hint})"] = None
    return list(missing)


# -- making a fixed batch dimension dynamic --------------------------------------------------------

def _constants(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Every tensor known at export time: initializers and Constant-node outputs."""
    values = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attribute.t)
    return values


def make_batch_dynamic(model: onnx.ModelProto, batch: int) -> onnx.ModelProto:
    """Rewrite a graph exported at a fixed batch size so that it takes any batch size.

    The input's and outputs' leading dims become symbolic, and each Reshape to a constant shape that
    starts with the batch size, applied to a tensor whose leading dim is that batch, gets 0 there
    instead (ONNX: "copy this dim from the input"): the same result at the exported batch size, and
    the right one at any other. onnx2torch would otherwise keep the constant and mix samples.
    """
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {value.name: _dims(value) for value in
              [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]}
    constants = _constants(model)
    for index, node in enumerate(model.graph.node):
        if node.op_type != "Reshape" or len(node.input) < 2 or node.input[1] not in constants:
            continue
        target = constants[node.input[1]]
        data_shape = shapes.get(node.input[0]) or [None]
        if target.ndim == 1 and target.size and target[0] == batch and data_shape[0] == batch:
            rewritten = target.copy()
            rewritten[0] = 0
            # A fresh initializer per node: the original constant may feed other nodes too.
            name = f"{node.input[1]}__batch_dynamic_{index}"
            model.graph.initializer.append(numpy_helper.from_array(rewritten, name))
            node.input[1] = name
    for value in [_image_input(model), *model.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value") and dims[0].dim_value == batch:
            dims[0].dim_param = _BATCH_DIM  # replaces dim_value: the two share a oneof
    # Intermediate shapes recorded at the fixed batch size would now contradict the input.
    del model.graph.value_info[:]
    return model


def _flush_subnormals(module: torch.nn.Module) -> None:
    """Set subnormal weights (|w| < 1.2e-38) to zero, in place.

    Trained weights decayed towards zero can end up subnormal (fr_feature.onnx has ~9k of them), and
    x86 arithmetic on subnormals is ~100x slower: one 1x1 conv took 250 ms instead of 2 ms. Zeroing them
    changes outputs by less than 1e-30.
    """
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            if tensor.is_floating_point():
                tensor[tensor.abs() < torch.finfo(tensor.dtype).tiny] = 0.0


# -- the recognizer --------------------------------------------------------------------------------

class OnnxRecognizer(Recognizer):
    """A recognizer whose network is an ONNX graph, converted to PyTorch with onnx2torch.

    The network's parameters are frozen (these are pretrained models; attacks differentiate with
    respect to the input pixels) and it always runs in inference mode; the module starts in eval mode.
    """

    def __init__(
        self,
        model: str | Path | onnx.ModelProto,
        *,
        name: str,
        preprocessing: OnnxPreprocessing,
        metric: Metric = Metric("cosine"),
        crop: CropSpec = ARCFACE_112,
        upstream_threshold: Threshold | None = None,
    ) -> None:
        super().__init__()
        if crop.size != preprocessing.size:
            raise MismatchError(f"{name}: crop is {crop.size}px but the model input is {preprocessing.size}px; "
                                "choose the crop of the model's input size")
        self.name = name
        self.crop = crop
        self.metric = metric
        self.upstream_threshold = upstream_threshold
        self.preprocessing = preprocessing
        self.source = str(model) if not isinstance(model, onnx.ModelProto) else "<ModelProto>"

        proto = load_onnx(model)
        if len(proto.graph.output) != 1:
            raise OnnxModelError(f"{name}: a recognizer has one output (the embedding); this graph has "
                                 f"{[o.name for o in proto.graph.output]}")
        try:
            fixed_batch = check_image_input(proto, preprocessing.size)
        except OnnxModelError as error:
            raise OnnxModelError(f"{name}: {error}") from None
        missing = unsupported_ops(proto)
        if missing:
            advice = " (re-export at a lower opset)" if "supported up to" in " ".join(missing) else ""
            raise OnnxModelError(f"{name}: onnx2torch cannot convert these ops{advice}: {', '.join(missing)}")
        if fixed_batch is not None:
            proto = make_batch_dynamic(proto, fixed_batch)
        try:
            # A ModelProto, not the path: onnx2torch would write a temporary file beside the model.
            self.network = convert(proto)
        except Exception as error:  # an op it knows but with attributes it does not support, say
            raise OnnxModelError(f"{name}: onnx2torch failed to convert the graph: {error}") from error

        self.network.requires_grad_(False)
        _flush_subnormals(self.network)
        self.eval()
        # Kept as [1, 3, 1, 1] buffers so they follow .to(device).
        self.register_buffer("pixel_mean", torch.tensor(preprocessing.mean).view(1, 3, 1, 1))
        self.register_buffer("pixel_std", torch.tensor(preprocessing.std).view(1, 3, 1, 1))
        self.embedding_dim = self._check_batching()

    def train(self, mode: bool = True) -> OnnxRecognizer:
        # A pretrained recognizer has no training mode: BatchNorm must keep its running statistics and
        # dropout stay off, even if a caller switches the whole module tree to training.
        super().train(mode)
        self.network.eval()
        return self

    def normalise(self, crops: torch.Tensor) -> torch.Tensor:
        pixels = crops * 255.0
        if self.preprocessing.channel_order == "BGR":
            pixels = pixels.flip(1)
        return (pixels - self.pixel_mean) / self.pixel_std

    def embed_normalised(self, x: torch.Tensor) -> torch.Tensor:
        # Some graphs end in a 1x1 conv and give [B, D, 1, 1]; embeddings are [B, D].
        return self.network(x).flatten(1)

    @torch.no_grad()
    def _check_batching(self) -> int:
        """Embed two random inputs together and apart; return the embedding size.

        Catches graphs whose batch size is baked in somewhere our rewrite does not reach.
        """
        generator = torch.Generator().manual_seed(0)
        x = torch.rand(2, 3, self.crop.size, self.crop.size, generator=generator) * 2 - 1
        singles = torch.cat([self.embed_normalised(x[:1]), self.embed_normalised(x[1:])])
        try:
            together = self.embed_normalised(x)
        except RuntimeError as error:
            raise OnnxModelError(f"{self.name}: the graph fails on a batch of 2 ({error}); its batch "
                                 "size is fixed somewhere; re-export it with a dynamic batch axis") from None
        scale = singles.abs().max().clamp_min(1e-12)
        if together.shape != singles.shape or (together - singles).abs().max() > 1e-4 * scale:
            raise OnnxModelError(f"{self.name}: a batch of 2 gives different embeddings than one at a time; "
                                 "re-export the model with a dynamic batch axis")
        return int(singles.shape[1])

    def extra_repr(self) -> str:
        return f"name={self.name!r}, source={self.source!r}, {self.preprocessing}"
