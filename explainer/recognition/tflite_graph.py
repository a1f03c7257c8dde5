"""Reading a float TFLite graph into PyTorch terms.

Three layers of meaning, from the file up:

1. `read_tflite` parses the flatbuffer (with the `tflite` schema package) into plain data: tensors
   (name, NHWC shape, type, constant value dequantised to float32) and operators (builtin name,
   input/output tensor ids, parsed options). Nothing here is model specific.
2. `lower` turns the operator list into PyTorch-ready layers (`Conv`, `PReLU`, `Add`, `Reshape`):
   weights are re-laid out from TFLite's OHWI / 1HWC to PyTorch's OIHW, and the five-op PReLU that
   TOCO emits for `relu(x) + alpha * (x - |x|) * 0.5` is recognised and folded into one PReLU.
   It handles exactly the ops the MobileFaceNet graph contains and raises `UnsupportedTFLiteOp` on
   anything else, so a new model fails loudly instead of converting wrongly.
3. `TFLiteConv2d`: an `nn.Conv2d` with TFLite's SAME/VALID padding, which for stride 2 on an even
   input pads only bottom/right (PyTorch's symmetric `padding=1` would shift every output by half a
   pixel).

The model-specific wiring (which lowered layer goes into which module) lives with the model.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import numpy as np
import torch
import tflite
from torch import nn
from torch.nn import functional as F

# TFLite enum values (schema.fbs), named once here.
_TENSOR_TYPES = {v: k for k, v in vars(tflite.TensorType).items() if not k.startswith("_")}
_ACTIVATIONS = {v: k for k, v in vars(tflite.ActivationFunctionType).items() if not k.startswith("_")}
_PADDINGS = {v: k for k, v in vars(tflite.Padding).items() if not k.startswith("_")}
_NUMPY_TYPES = {
    "FLOAT32": np.float32, "FLOAT16": np.float16, "FLOAT64": np.float64, "INT8": np.int8,
    "UINT8": np.uint8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64, "BOOL": np.bool_,
}
# The ops `lower` understands: the ones MobileFaceNet.tflite (TOCO) is made of.
SUPPORTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "RELU", "ABS", "SUB", "MUL", "ADD", "RESHAPE")


class TFLiteFormatError(ValueError):
    """The file is not a TFLite flatbuffer, or uses a feature this reader does not handle."""


class UnsupportedTFLiteOp(NotImplementedError):
    """The graph contains an op (or an op in a pattern) that `lower` does not translate."""


# ----------------------------------------------------------------------------------------------
# 1. The flatbuffer as plain data
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TensorSpec:
    index: int
    name: str
    shape: tuple[int, ...]  # TFLite layout (NHWC for feature maps)
    dtype: str  # TFLite type name, e.g. "FLOAT32"
    value: np.ndarray | None  # constant data (float types and quantised ints as float32); None if computed
    quantised: bool = False  # stored as integers with scale/zero point


@dataclass(frozen=True)
class Operator:
    index: int
    kind: str  # builtin op name ("CONV_2D"), or "CUSTOM:<code>"
    inputs: tuple[int, ...]  # tensor ids; -1 marks an absent optional input
    outputs: tuple[int, ...]
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TFLiteGraph:
    tensors: tuple[TensorSpec, ...]
    operators: tuple[Operator, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]

    def constant(self, index: int) -> np.ndarray:
        value = self.tensors[index].value
        if value is None:
            raise UnsupportedTFLiteOp(f"tensor {index} ({self.tensors[index].name}) must be a constant")
        return value

    def is_constant(self, index: int) -> bool:
        return index >= 0 and self.tensors[index].value is not None

    def consumers(self) -> dict[int, list[int]]:
        """Tensor id -> indices of the operators that read it."""
        readers: dict[int, list[int]] = {}
        for op in self.operators:
            for t in op.inputs:
                readers.setdefault(t, []).append(op.index)
        return readers

    def producers(self) -> dict[int, Operator]:
        return {t: op for op in self.operators for t in op.outputs}


def dequantise(raw: np.ndarray, dtype: str, scale: np.ndarray | None = None,
               zero_point: np.ndarray | None = None, axis: int = 0) -> np.ndarray:
    """A stored constant as float32: float16 is widened, quantised ints map to (q - zero) * scale.

    `scale`/`zero_point` are per tensor (length 1) or per channel along `axis`.
    """
    if scale is None or len(scale) == 0:
        return raw.astype(np.float32) if raw.dtype.kind == "f" else raw
    if dtype not in ("INT8", "UINT8", "INT16", "INT32"):
        raise TFLiteFormatError(f"cannot dequantise a {dtype} tensor")
    zero = np.zeros_like(scale, dtype=np.int64) if zero_point is None or len(zero_point) == 0 else zero_point
    shape = [1] * raw.ndim
    if len(scale) > 1:  # per channel: broadcast along the quantised dimension
        shape[axis] = len(scale)
    scale = np.asarray(scale, np.float64).reshape(shape)
    zero = np.asarray(zero, np.int64).reshape(shape)
    return ((raw.astype(np.int64) - zero) * scale).astype(np.float32)


def _is_tflite(data: bytes) -> bool:
    # A TFLite flatbuffer starts with a 4-byte root offset, then the file identifier "TFL3".
    return len(data) >= 8 and data[4:8] == b"TFL3"


def is_tflite_file(path: Union[str, Path]) -> bool:
    with open(path, "rb") as handle:
        return _is_tflite(handle.read(8))


def _options(op: tflite.Operator, kind: str) -> dict:
    """The builtin options this module reads, as a plain dict."""
    table = op.BuiltinOptions()
    if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        opts = tflite.Conv2DOptions() if kind == "CONV_2D" else tflite.DepthwiseConv2DOptions()
        opts.Init(table.Bytes, table.Pos)
        parsed = {
            "padding": _PADDINGS[opts.Padding()],
            "stride": (opts.StrideH(), opts.StrideW()),
            "dilation": (opts.DilationHFactor(), opts.DilationWFactor()),
            "activation": _ACTIVATIONS[opts.FusedActivationFunction()],
        }
        if kind == "DEPTHWISE_CONV_2D":
            parsed["depth_multiplier"] = opts.DepthMultiplier()
        return parsed
    if kind in ("ADD", "SUB", "MUL"):
        if table is None:  # options are optional; the default is no fused activation
            return {"activation": "NONE"}
        opts = {"ADD": tflite.AddOptions, "SUB": tflite.SubOptions, "MUL": tflite.MulOptions}[kind]()
        opts.Init(table.Bytes, table.Pos)
        return {"activation": _ACTIVATIONS[opts.FusedActivationFunction()]}
    if kind == "RESHAPE" and table is not None:
        opts = tflite.ReshapeOptions()
        opts.Init(table.Bytes, table.Pos)
        if opts.NewShapeLength():
            return {"new_shape": tuple(int(d) for d in opts.NewShapeAsNumpy())}
    return {}


def _tensor(model: tflite.Model, graph: tflite.SubGraph, index: int, data: bytes) -> TensorSpec:
    t = graph.Tensors(index)
    dtype = _TENSOR_TYPES.get(t.Type(), f"TYPE{t.Type()}")
    shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
    buffer = model.Buffers(t.Buffer())
    if buffer.Offset() > 1:  # large models keep the data outside the flatbuffer, addressed by offset
        raw_bytes = data[buffer.Offset(): buffer.Offset() + buffer.Size()]
    else:
        raw_bytes = buffer.DataAsNumpy().tobytes() if buffer.DataLength() else b""
    quant = t.Quantization()
    scale = quant.ScaleAsNumpy() if quant is not None and quant.ScaleLength() else None
    value = None
    if raw_bytes:
        if dtype not in _NUMPY_TYPES:
            raise TFLiteFormatError(f"tensor {index} ({t.Name().decode()}): unsupported type {dtype}")
        raw = np.frombuffer(raw_bytes, _NUMPY_TYPES[dtype]).reshape(shape)
        zero = quant.ZeroPointAsNumpy() if scale is not None and quant.ZeroPointLength() else None
        axis = quant.QuantizedDimension() if scale is not None else 0
        value = dequantise(raw, dtype, scale, zero, axis)
    return TensorSpec(index, t.Name().decode(), shape, dtype, value, quantised=scale is not None)


def read_tflite(path: Union[str, Path]) -> TFLiteGraph:
    """Parse the first subgraph of a .tflite file into plain data. Raises `TFLiteFormatError`."""
    data = Path(path).read_bytes()
    if not _is_tflite(data):
        raise TFLiteFormatError(f"{path} is not a TFLite model (no 'TFL3' flatbuffer identifier)")
    try:
        model = tflite.Model.GetRootAsModel(data, 0)
        if model.SubgraphsLength() != 1:
            raise TFLiteFormatError(f"{path}: expected one subgraph, found {model.SubgraphsLength()}")
        graph = model.Subgraphs(0)
        tensors = tuple(_tensor(model, graph, i, data) for i in range(graph.TensorsLength()))
        operators = []
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            code = model.OperatorCodes(op.OpcodeIndex())
            # Newer files keep ops >= 127 in BuiltinCode and a placeholder in the deprecated field.
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            kind = tflite.opcode2name(builtin)
            if kind == "CUSTOM":
                kind = f"CUSTOM:{(code.CustomCode() or b'').decode()}"
            operators.append(Operator(i, kind, tuple(int(t) for t in op.InputsAsNumpy()),
                                      tuple(int(t) for t in op.OutputsAsNumpy()), _options(op, kind)))
        return TFLiteGraph(tensors, tuple(operators), tuple(int(t) for t in graph.InputsAsNumpy()),
                           tuple(int(t) for t in graph.OutputsAsNumpy()))
    except TFLiteFormatError:
        raise
    except Exception as err:  # a corrupt flatbuffer surfaces as IndexError/struct.error deep inside
        raise TFLiteFormatError(f"{path}: cannot parse the TFLite flatbuffer ({err})") from err


# ----------------------------------------------------------------------------------------------
# 2. Lowering to PyTorch-ready layers
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Conv:
    """CONV_2D or DEPTHWISE_CONV_2D, weight already in PyTorch layout [out, in/groups, kh, kw]."""

    source: str  # "op 12 CONV_2D" for error messages
    input: int
    output: int
    weight: torch.Tensor
    bias: torch.Tensor | None
    stride: tuple[int, int]
    dilation: tuple[int, int]
    padding: str  # "SAME" or "VALID"
    groups: int
    activation: str  # fused activation, "NONE" when linear


@dataclass(frozen=True)
class PReLU:
    """Per-channel PReLU, folded from RELU/ABS/SUB/MUL/ADD."""

    source: str
    input: int
    output: int
    alpha: torch.Tensor  # [channels]


@dataclass(frozen=True)
class Add:
    """Element-wise sum of two computed tensors (a residual connection)."""

    source: str
    inputs: tuple[int, int]
    output: int


@dataclass(frozen=True)
class Reshape:
    source: str
    input: int
    output: int
    input_shape: tuple[int, ...]  # NHWC
    new_shape: tuple[int, ...]


Layer = Union[Conv, PReLU, Add, Reshape]


def _conv(graph: TFLiteGraph, op: Operator) -> Conv:
    source = f"op {op.index} {op.kind}"
    x, w, b = (op.inputs + (-1,))[:3]
    weight = graph.constant(w)  # CONV_2D: [out, kh, kw, in]; DEPTHWISE: [1, kh, kw, in * multiplier]
    in_channels = graph.tensors[x].shape[-1]
    if op.kind == "CONV_2D":
        if weight.shape[3] != in_channels:
            raise UnsupportedTFLiteOp(f"{source}: grouped CONV_2D (weight {weight.shape}) is not supported")
        torch_weight = torch.from_numpy(weight.transpose(0, 3, 1, 2).copy())
        groups = 1
    else:
        # Output channel c * multiplier + m reads input channel c: exactly PyTorch's grouped-conv order
        # with groups = in_channels, so [1, kh, kw, C*M] -> [C*M, 1, kh, kw].
        if weight.shape[0] != 1 or weight.shape[3] % in_channels:
            raise UnsupportedTFLiteOp(f"{source}: depthwise weight {weight.shape} for {in_channels} channels")
        torch_weight = torch.from_numpy(weight.transpose(3, 0, 1, 2).copy())
        groups = in_channels
    bias = torch.from_numpy(graph.constant(b).copy()) if b >= 0 else None
    o = op.options
    return Conv(source, x, op.outputs[0], torch_weight.float(), None if bias is None else bias.float(),
                o["stride"], o["dilation"], o["padding"], groups, o["activation"])


def _find_prelus(graph: TFLiteGraph) -> dict[int, tuple[PReLU, set[int]]]:
    """PReLU patterns keyed by the index of their final ADD, with the op indices they absorb.

    TOCO writes PReLU(x) as  y = RELU(x) + c * (x - ABS(x)),  c = alpha / 2  (either operand order for
    the MUL and ADD). For x < 0 that is 2c*x, otherwise x: a PReLU with slope alpha = 2c, and bit-exact,
    since doubling is exact in floating point.
    """
    producer = graph.producers()
    readers = graph.consumers()
    found: dict[int, tuple[PReLU, set[int]]] = {}

    def made_by(tensor: int, kind: str) -> Operator | None:
        op = producer.get(tensor)
        # The intermediate must feed only this pattern, or folding would drop a value someone reads.
        return op if op is not None and op.kind == kind and len(readers.get(tensor, ())) == 1 else None

    for add in graph.operators:
        if add.kind != "ADD" or add.options.get("activation") != "NONE":
            continue
        for relu_out, mul_out in (add.inputs, add.inputs[::-1]):
            relu, mul = made_by(relu_out, "RELU"), made_by(mul_out, "MUL")
            if relu is None or mul is None or mul.options.get("activation") != "NONE":
                continue
            const_in = [t for t in mul.inputs if graph.is_constant(t)]
            var_in = [t for t in mul.inputs if not graph.is_constant(t)]
            if len(const_in) != 1 or len(var_in) != 1:
                continue
            sub = made_by(var_in[0], "SUB")
            if sub is None or sub.options.get("activation") != "NONE":
                continue
            x = relu.inputs[0]
            absolute = made_by(sub.inputs[1], "ABS")
            if sub.inputs[0] != x or absolute is None or absolute.inputs[0] != x:
                continue
            channels = graph.tensors[x].shape[-1]
            half_alpha = torch.from_numpy(graph.constant(const_in[0]).astype(np.float32).reshape(-1))
            if half_alpha.numel() not in (1, channels):
                continue
            alpha = (2.0 * half_alpha).expand(channels).clone()
            prelu = PReLU(f"op {add.index} PReLU(ops {relu.index},{absolute.index},{sub.index},{mul.index})",
                          x, add.outputs[0], alpha)
            found[add.index] = (prelu, {relu.index, absolute.index, sub.index, mul.index})
            break
    return found


def lower(graph: TFLiteGraph) -> list[Layer]:
    """The graph's operators as layers in execution order. Raises `UnsupportedTFLiteOp`."""
    for t in graph.tensors:
        if t.quantised and t.value is None:
            raise UnsupportedTFLiteOp(f"tensor {t.index} ({t.name}) is a quantised activation; "
                                      "only float graphs (optionally with quantised weights) are supported")
    prelus = _find_prelus(graph)
    absorbed = set().union(*(ops for _, ops in prelus.values()))
    layers: list[Layer] = []
    for op in graph.operators:
        source = f"op {op.index} {op.kind}"
        if op.index in absorbed:
            continue
        if op.index in prelus:
            layers.append(prelus[op.index][0])
        elif op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            layers.append(_conv(graph, op))
        elif op.kind == "ADD" and not any(graph.is_constant(t) for t in op.inputs):
            if op.options["activation"] != "NONE":
                raise UnsupportedTFLiteOp(f"{source}: fused {op.options['activation']} on ADD")
            layers.append(Add(source, (op.inputs[0], op.inputs[1]), op.outputs[0]))
        elif op.kind == "RESHAPE":
            x = op.inputs[0]
            new_shape = op.options.get("new_shape")
            if new_shape is None and len(op.inputs) > 1 and graph.is_constant(op.inputs[1]):
                new_shape = tuple(int(d) for d in graph.constant(op.inputs[1]))
            if new_shape is None:
                raise UnsupportedTFLiteOp(f"{source}: reshape to a computed shape")
            layers.append(Reshape(source, x, op.outputs[0], graph.tensors[x].shape, new_shape))
        elif op.kind in SUPPORTED_OPS:
            raise UnsupportedTFLiteOp(f"{source}: {op.kind} is only supported inside the PReLU pattern "
                                      "RELU(x) + c * (x - ABS(x)), or as an ADD of two computed tensors")
        else:
            raise UnsupportedTFLiteOp(f"{source}: unsupported TFLite op {op.kind} "
                                      f"(supported: {', '.join(SUPPORTED_OPS)})")
    return layers


# ----------------------------------------------------------------------------------------------
# 3. TFLite convolution semantics as a PyTorch layer
# ----------------------------------------------------------------------------------------------
def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's SAME padding along one axis: (before, after), the odd pixel going after."""
    effective = (kernel - 1) * dilation + 1
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


class TFLiteConv2d(nn.Conv2d):
    """`nn.Conv2d` padded the TFLite way: "VALID" (none) or "SAME" (computed from the input size)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 groups: int = 1, tf_padding: str = "SAME", dilation: int = 1, bias: bool = True) -> None:
        if tf_padding not in ("SAME", "VALID"):
            raise ValueError(f"tf_padding must be 'SAME' or 'VALID', got {tf_padding!r}")
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0,
                         dilation=dilation, groups=groups, bias=bias)
        self.tf_padding = tf_padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.tf_padding == "VALID":
            return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
        top, bottom = same_padding(x.shape[-2], self.kernel_size[0], self.stride[0], self.dilation[0])
        left, right = same_padding(x.shape[-1], self.kernel_size[1], self.stride[1], self.dilation[1])
        if top == bottom and left == right:  # symmetric: let the convolution pad, no copy
            return F.conv2d(x, self.weight, self.bias, self.stride, (top, left), self.dilation, self.groups)
        x = F.pad(x, (left, right, top, bottom))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", tf_padding={self.tf_padding}"
