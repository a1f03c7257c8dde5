"""IR / IR-SE ResNets (ArcFace "improved residual" backbones) in two checkpoint layouts, loading strictly.

Two layouts share the key scheme `input_layer`, `body.{n}.res_layer` / `.shortcut_layer`, `output_layer`:

* "treb": TreB1eN/InsightFace_Pytorch `Backbone(50, 0.6, 'ir_se')` (model_ir_se50.pth,
  compat/treb_ir_se50.json). Unit: BN, 3x3 conv, PReLU, 3x3 conv (stride), BN [, SE]. Shortcut: 1x1
  conv + BN where the width changes, else the input subsampled by the stride (MaxPool2d(1, stride)).
* "far": the paper's `Backbone(50)` in face_utils/arcface.py (checkpoint/arcface_r50.pth,
  compat/far_arcface_r50.json). Its unit has one more BatchNorm, after the first conv (BN, conv, BN,
  PReLU, conv (stride), BN, SE), and a 1x1 conv + BN shortcut wherever the stride is not 1, so the
  very first unit (64 -> 64, stride 2) has one too. 523 state entries against TreB1eN's 397.

Network: 3x3 conv 64 + BN + PReLU at 112 px; four stages of 64/128/256/512 channels, each starting
with a stride-2 unit (112 -> 56 -> 28 -> 14 -> 7); units per stage by depth (50: 3-4-14-3, 100:
3-13-30-3, 152: 3-8-36-3); SE: global average pool, 1x1 conv to C/16, ReLU, 1x1 conv, sigmoid gate.
Output: BN2d, dropout, flatten, Linear(512*7*7, 512), BatchNorm1d, then L2 normalisation (both
upstreams' forward). Input RGB in [-1, 1] at 112 x 112 (ArcFace crop).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from explainer.recognition.arcface_trained import EMBEDDING_DIM, ArcFaceTrainedRecognizer

UNITS_BY_DEPTH = {50: (3, 4, 14, 3), 100: (3, 13, 30, 3), 152: (3, 8, 36, 3)}
STAGE_CHANNELS = (64, 128, 256, 512)
VARIANTS = ("treb", "far")
SE_REDUCTION = 16


class SEModule(nn.Module):
    """Squeeze-and-excitation: a per-channel gate from the globally pooled features."""

    def __init__(self, channels: int, reduction: int = SE_REDUCTION) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=False)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean(dim=(2, 3), keepdim=True)))))
        return x * gate


class IRUnit(nn.Module):
    """One improved-residual unit; the layout (`variant`) decides the extra BN and the shortcut rule."""

    def __init__(self, in_channels: int, depth: int, stride: int, se: bool, variant: str) -> None:
        super().__init__()
        # the shortcut is registered first, as upstream does (state-dict key order)
        conv_shortcut = in_channels != depth or (variant == "far" and stride != 1)
        self.shortcut_layer = (nn.Sequential(nn.Conv2d(in_channels, depth, 1, stride, bias=False), nn.BatchNorm2d(depth))
                               if conv_shortcut else None)
        layers: list[nn.Module] = [nn.BatchNorm2d(in_channels),
                                   nn.Conv2d(in_channels, depth, 3, 1, 1, bias=False)]
        if variant == "far":
            layers.append(nn.BatchNorm2d(depth))
        layers += [nn.PReLU(depth), nn.Conv2d(depth, depth, 3, stride, 1, bias=False), nn.BatchNorm2d(depth)]
        if se:
            layers.append(SEModule(depth))
        self.res_layer = nn.Sequential(*layers)
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # without a conv, the shortcut is MaxPool2d(kernel 1, stride): plain subsampling
        shortcut = self.shortcut_layer(x) if self.shortcut_layer is not None else x[:, :, ::self.stride, ::self.stride]
        return self.res_layer(x) + shortcut


@dataclass(frozen=True)
class IRSEConfig:
    units: tuple[int, int, int, int] = UNITS_BY_DEPTH[50]
    se: bool = True
    variant: str = "treb"
    embedding_dim: int = EMBEDDING_DIM

    @property
    def depth(self) -> int | None:
        return next((d for d, u in UNITS_BY_DEPTH.items() if u == self.units), None)


class IRSENet(ArcFaceTrainedRecognizer):
    """IR(-SE) ResNet recognizer in TreB1eN's or the paper's layout; 112 px ArcFace crops -> unit 512-D."""

    def __init__(self, depth: int | None = 50, se: bool = True, variant: str = "treb",
                 units: tuple[int, int, int, int] | None = None, embedding_dim: int = EMBEDDING_DIM,
                 name: str | None = None) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"unknown IR-SE layout {variant!r}; expected one of {VARIANTS}")
        if units is None:
            if depth not in UNITS_BY_DEPTH:
                raise ValueError(f"IR depth {depth} unknown; known {sorted(UNITS_BY_DEPTH)} (or pass units=)")
            units = UNITS_BY_DEPTH[depth]
        config = IRSEConfig(tuple(units), se, variant, embedding_dim)
        default_name = f"{variant}-ir{'-se' if se else ''}{config.depth or sum(units) * 2 + 2}"
        super().__init__(name or default_name, embedding_dim, l2_normalise=True)
        self.config = config
        self.input_layer = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))
        # registered before the body, as upstream does, so the state dict has upstream's key order
        self.output_layer = nn.Sequential(nn.BatchNorm2d(512), nn.Dropout(), nn.Flatten(),
                                          nn.Linear(512 * 7 * 7, embedding_dim), nn.BatchNorm1d(embedding_dim))
        body, in_channels = [], 64
        for n_units, channels in zip(units, STAGE_CHANNELS):
            for i in range(n_units):
                body.append(IRUnit(in_channels, channels, 2 if i == 0 else 1, se, variant))
                in_channels = channels
        self.body = nn.Sequential(*body)

    def embed_normalised(self, x: torch.Tensor) -> torch.Tensor:
        features = self.body(self.input_layer(x))
        assert features.shape[1:] == (512, 7, 7), features.shape
        return self.finish(self.output_layer(features))


def infer_irse_config(state: Mapping[str, torch.Tensor]) -> IRSEConfig:
    """Units per stage, SE, layout and width from an IR(-SE) state dict (KeyError if it is not one)."""
    unit_channels: dict[int, int] = {}
    for key, value in state.items():
        if (m := re.fullmatch(r"body\.(\d+)\.res_layer\.1\.weight", key)):
            unit_channels[int(m.group(1))] = value.shape[0]
    if not unit_channels:
        raise KeyError("body.{n}.res_layer.1.weight")
    units = tuple(sum(1 for c in unit_channels.values() if c == channels) for channels in STAGE_CHANNELS)
    # the paper's extra BN makes index 2 a BatchNorm (1-D weight); TreB1eN's index 2 is a PReLU without bias
    variant = "far" if "body.0.res_layer.2.bias" in state else "treb"
    se = any(k.endswith(".fc1.weight") for k in state)
    embedding_dim = state["output_layer.4.weight"].shape[0]
    return IRSEConfig(units, se, variant, embedding_dim)


def build_irse(config: IRSEConfig, name: str | None = None) -> IRSENet:
    return IRSENet(None, config.se, config.variant, config.units, config.embedding_dim, name=name)
