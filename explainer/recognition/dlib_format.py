"""Reading dlib's serialised face-recognition ResNet (`dlib_face_recognition_resnet_model_v1.dat`).

Pure numpy, no dlib: the file is parsed into its layer stack, checked layer by layer against the
network of dlib's `dnn_face_recognition_ex.cpp` (`anet_type`), and its weights are named for
`explainer.recognition.dlib_resnet.DlibResNet`.

dlib's serialisation, as far as this network needs it (dlib/serialize.h, dlib/dnn/{core,layers,
tensor,input,loss}.h):
  - integers: a control byte (low 4 bits: byte count, bit 7: negative), then |value| little endian;
  - bool: the ASCII byte '1' or '0'; string: its length (an integer), then the bytes;
  - float/double: a signed integer mantissa then an integer exponent, value = mantissa * 2**exponent;
  - tensor: version 2, num_samples, k, nr, nc, then raw little-endian float32 (NCHW);
  - alias_tensor (a view's shape): version 1, num_samples, k, nr, nc.
A network is written outside in, but every wrapper writes its subnetwork *before* its own layer, so
the file holds all wrapper versions first (outermost first), then the input layer, then the layers
from the input upwards. Tag and skip wrappers (dlib's residual plumbing) write only a version.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# The residual blocks after the stem, input to output: (channels, downsamples). dlib's alevel4..0:
# 3x ares<32>, ares_down<64> + 3x ares<64>, ares_down<128> + 2x ares<128>, ares_down<256> +
# 2x ares<256>, ares_down<256>.
RESNET_BLOCKS: tuple[tuple[int, bool], ...] = (
    (32, False), (32, False), (32, False),
    (64, True), (64, False), (64, False), (64, False),
    (128, True), (128, False), (128, False),
    (256, True), (256, False), (256, False),
    (256, True),
)
STEM_CHANNELS = 32
EMBEDDING_DIM = 128
CHIP_SIZE = 150

_INPUT_LAYER = "input_rgb_image_sized"
_MAX_WRAPPERS = 10_000  # far above this network's ~150; stops a runaway parse of a foreign file
# float_details' markers for non-finite values (dlib/float_details.h)
_EXP_INF, _EXP_NINF, _EXP_NAN = 32000, 32001, 32002


class _Stream:
    """A cursor over the file's bytes; every read past the end is a ValueError, never an IndexError."""

    def __init__(self, data: bytes, source: str) -> None:
        self.data = data
        self.pos = 0
        self.source = source

    def fail(self, what: str) -> ValueError:
        return ValueError(f"{self.source}: not dlib's face ResNet ({what}, at byte {self.pos})")

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise self.fail(f"truncated: wanted {n} bytes, {len(self.data) - self.pos} left")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def integer(self) -> int:
        control = self.take(1)[0]
        size = control & 0x0F
        if size > 8 or control & 0x70:
            raise self.fail(f"bad integer control byte 0x{control:02x}")
        value = int.from_bytes(self.take(size), "little")
        return -value if control & 0x80 else value

    def boolean(self) -> bool:
        byte = self.take(1)
        if byte not in (b"0", b"1"):
            raise self.fail(f"bad bool byte {byte!r}")
        return byte == b"1"

    def string(self, max_len: int = 256) -> str:
        length = self.integer()
        if not 0 <= length <= max_len:
            raise self.fail(f"implausible string length {length}")
        raw = self.take(length)
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise self.fail(f"non-ASCII string {raw[:32]!r}") from None

    def peek_string(self, prefix: str) -> bool:
        """Whether a string starting with `prefix` comes next (the cursor does not move)."""
        start = self.pos
        try:
            length = self.integer()
            return 0 <= length <= 256 and self.data[self.pos:self.pos + length].startswith(prefix.encode())
        except ValueError:
            return False
        finally:
            self.pos = start

    def real(self) -> float:
        mantissa, exponent = self.integer(), self.integer()
        if exponent == _EXP_INF:
            return math.inf
        if exponent == _EXP_NINF:
            return -math.inf
        if exponent == _EXP_NAN:
            return math.nan
        return math.ldexp(mantissa, exponent)

    def tensor(self) -> np.ndarray:
        version = self.integer()
        if version != 2:
            raise self.fail(f"tensor version {version}, expected 2")
        shape = tuple(self.integer() for _ in range(4))
        if any(d < 0 for d in shape):
            raise self.fail(f"negative tensor shape {shape}")
        count = math.prod(shape)
        return np.frombuffer(self.take(4 * count), dtype="<f4").astype(np.float32).reshape(shape)

    def alias_shape(self) -> tuple[int, int, int, int]:
        version = self.integer()
        if version != 1:
            raise self.fail(f"alias_tensor version {version}, expected 1")
        return tuple(self.integer() for _ in range(4))  # type: ignore[return-value]


@dataclass
class DlibLayer:
    """One computational layer (or "tag": a tag/skip marker) with its settings and float32 tensors."""

    kind: str  # con, affine, relu, max_pool, avg_pool, add_prev, fc, tag
    config: dict[str, int] = field(default_factory=dict)
    tensors: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class DlibNetwork:
    """The parsed file: the loss settings, the input layer and the layers from the input upwards."""

    loss: str
    margin: float
    distance_threshold: float
    input_mean_rgb: tuple[float, float, float]
    input_size: tuple[int, int]  # rows, cols
    layers: list[DlibLayer]


# -- layer details ------------------------------------------------------------------------------------

def _read_con(s: _Stream) -> DlibLayer:
    params = s.tensor()
    num_filters, nr, nc, stride_y, stride_x, pad_y, pad_x = (s.integer() for _ in range(7))
    filters, biases = s.alias_shape(), s.alias_shape()
    for _ in range(4):  # learning-rate and weight-decay multipliers: training only
        s.real()
    if filters[0] != num_filters or filters[2:] != (nr, nc) or biases != (1, num_filters, 1, 1):
        raise s.fail(f"con_ views {filters} / {biases} disagree with {num_filters} {nr}x{nc} filters")
    n_weights = math.prod(filters)
    if params.size != n_weights + num_filters:
        raise s.fail(f"con_ holds {params.size} values, expected {n_weights + num_filters}")
    flat = params.reshape(-1)
    return DlibLayer("con", dict(out=num_filters, inp=filters[1], kernel_y=nr, kernel_x=nc, stride_y=stride_y,
                                 stride_x=stride_x, pad_y=pad_y, pad_x=pad_x),
                     dict(weight=flat[:n_weights].reshape(filters), bias=flat[n_weights:].copy()))


def _read_affine(s: _Stream) -> DlibLayer:
    params = s.tensor()
    gamma, beta = s.alias_shape(), s.alias_shape()
    mode = s.integer()  # 0: per channel (CONV_MODE), 1: per element (FC_MODE)
    channels = gamma[1]
    if mode != 0 or gamma != (1, channels, 1, 1) or beta != gamma or params.size != 2 * channels:
        raise s.fail(f"affine_ of mode {mode} with views {gamma} / {beta} is not a per-channel affine")
    flat = params.reshape(-1)
    return DlibLayer("affine", dict(channels=channels),
                     dict(weight=flat[:channels].copy(), bias=flat[channels:].copy()))


def _read_pool(s: _Stream, kind: str) -> DlibLayer:
    nr, nc, stride_y, stride_x, pad_y, pad_x = (s.integer() for _ in range(6))
    return DlibLayer(kind, dict(window_y=nr, window_x=nc, stride_y=stride_y, stride_x=stride_x,
                                pad_y=pad_y, pad_x=pad_x))


def _read_fc(s: _Stream) -> DlibLayer:
    num_outputs, num_inputs = s.integer(), s.integer()
    params = s.tensor()
    weights, _biases = s.alias_shape(), s.alias_shape()
    bias_mode = s.integer()  # 0: FC_HAS_BIAS, 1: FC_NO_BIAS
    for _ in range(4):
        s.real()
    expected_view = (num_inputs, num_outputs, 1, 1)
    if bias_mode != 1 or weights != expected_view or params.size != num_inputs * num_outputs:
        raise s.fail(f"fc_ with bias mode {bias_mode} and view {weights} is not an fc_no_bias")
    # dlib computes output = input (N x inputs) @ W (inputs x outputs); torch's Linear wants W^T.
    return DlibLayer("fc", dict(out=num_outputs, inp=num_inputs),
                     dict(weight=np.ascontiguousarray(params.reshape(num_inputs, num_outputs).T)))


def _read_layer(s: _Stream) -> DlibLayer:
    name = s.string()
    if name == "con_4":
        return _read_con(s)
    if name == "affine_":
        return _read_affine(s)
    if name == "relu_":
        return DlibLayer("relu")
    if name == "add_prev_":
        return DlibLayer("add_prev")
    if name == "max_pool_2":
        return _read_pool(s, "max_pool")
    if name == "avg_pool_2":
        return _read_pool(s, "avg_pool")
    if name == "fc_2":
        return _read_fc(s)
    raise s.fail(f"unsupported layer {name!r}")


def _skip_add_layer_state(s: _Stream, tensors: int) -> None:
    """An add_layer's bookkeeping after its details: three flags and cached training tensors."""
    for _ in range(3):
        s.boolean()
    for _ in range(tensors):
        s.tensor()


# -- the network ------------------------------------------------------------------------------------------

def read_dlib_network(path: str | Path) -> DlibNetwork:
    """Parse a dlib DNN file with a loss_metric head and an input_rgb_image_sized input."""
    path = Path(path)
    s = _Stream(path.read_bytes(), str(path))

    if s.integer() != 1:  # add_loss_layer version
        raise s.fail("no add_loss_layer at the start")
    loss = s.string()
    if loss != "loss_metric_2":
        raise s.fail(f"loss {loss!r}, expected 'loss_metric_2'")
    margin, distance_threshold = s.real(), s.real()

    # Wrapper versions, outermost first, until the innermost add_layer that holds the input layer.
    wrappers: list[int] = []
    while True:
        version = s.integer()
        if s.peek_string("input_"):
            input_version = version
            break
        wrappers.append(version)
        if len(wrappers) > _MAX_WRAPPERS:
            raise s.fail("no input layer found")

    if s.string() != _INPUT_LAYER:
        raise s.fail(f"input layer is not {_INPUT_LAYER}")
    mean = (s.real(), s.real(), s.real())
    input_size = (s.integer(), s.integer())
    if input_version not in (2, 3):
        raise s.fail(f"input add_layer version {input_version}")
    layers = [_read_layer(s)]
    _skip_add_layer_state(s, tensors=3)  # x_grad, cached_output, grad_final
    if input_version == 3:
        s.integer()  # sample expansion factor

    for version in reversed(wrappers):
        if version == 1:  # add_tag_layer / add_skip_layer: nothing but the version
            layers.append(DlibLayer("tag"))
        elif version == 2:
            layers.append(_read_layer(s))
            _skip_add_layer_state(s, tensors=3)  # x_grad, cached_output, params_grad
        else:
            raise s.fail(f"unknown wrapper version {version}")
    if s.pos != len(s.data):
        raise s.fail(f"{len(s.data) - s.pos} unexpected trailing bytes")
    return DlibNetwork(loss, margin, distance_threshold, mean, input_size, layers)


def _expected_layers() -> list[tuple[str, dict[str, int], str | None]]:
    """dlib's anet_type from the input upwards: (kind, settings, our state-dict prefix or None)."""

    def con(out: int, inp: int, k: int, stride: int, pad: int) -> dict[str, int]:
        return dict(out=out, inp=inp, kernel_y=k, kernel_x=k,
                    stride_y=stride, stride_x=stride, pad_y=pad, pad_x=pad)

    def pool(window: int, stride: int) -> dict[str, int]:
        return dict(window_y=window, window_x=window, stride_y=stride, stride_x=stride, pad_y=0, pad_x=0)

    layers = [("con", con(STEM_CHANNELS, 3, 7, 2, 0), "stem.conv"),
              ("affine", dict(channels=STEM_CHANNELS), "stem.affine"),
              ("relu", {}, None), ("max_pool", pool(3, 2), None)]
    in_channels = STEM_CHANNELS
    for i, (channels, down) in enumerate(RESNET_BLOCKS):
        block = f"blocks.{i}"
        # dlib's con<> pads k/2 at stride 1 and nothing at stride 2.
        stride, pad = (2, 0) if down else (1, 1)
        layers += [("tag", {}, None),
                   ("con", con(channels, in_channels, 3, stride, pad), f"{block}.conv1"),
                   ("affine", dict(channels=channels), f"{block}.affine1"), ("relu", {}, None),
                   ("con", con(channels, channels, 3, 1, 1), f"{block}.conv2"),
                   ("affine", dict(channels=channels), f"{block}.affine2")]
        if down:  # tag2, skip1 back to the block input, avg_pool<2,2,2,2> on that shortcut
            layers += [("tag", {}, None), ("tag", {}, None), ("avg_pool", pool(2, 2), None)]
        layers += [("add_prev", {}, None), ("relu", {}, None)]
        in_channels = channels
    # avg_pool_everything: window 0 means "the whole input", stride 1
    layers += [("avg_pool", pool(0, 1), None), ("fc", dict(out=EMBEDDING_DIM, inp=in_channels), "fc")]
    return layers


def read_dlib_resnet(path: str | Path) -> dict[str, np.ndarray]:
    """The face ResNet's weights as a state dict for `DlibResNet` (float32 arrays).

    Raises ValueError for a file that is not exactly this network (truncated, another dlib model, or
    not a dlib file at all).
    """
    network = read_dlib_network(path)
    if network.input_size != (CHIP_SIZE, CHIP_SIZE):
        raise ValueError(f"{path}: input is {network.input_size}, expected {CHIP_SIZE}x{CHIP_SIZE} chips")
    expected = _expected_layers()
    if len(network.layers) != len(expected):
        raise ValueError(f"{path}: {len(network.layers)} layers, dlib's face ResNet has {len(expected)}")

    state: dict[str, np.ndarray] = {"input_mean": np.asarray(network.input_mean_rgb, dtype=np.float32)}
    for index, (layer, (kind, config, prefix)) in enumerate(zip(network.layers, expected)):
        if layer.kind != kind or layer.config != config:
            raise ValueError(
                f"{path}: layer {index} is {layer.kind} {layer.config}, expected {kind} {config}")
        for name, array in layer.tensors.items():
            state[f"{prefix}.{name}"] = array
    return state
