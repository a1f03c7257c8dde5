"""insightface's iresnet (arcface_torch backbones/iresnet.py layout), loading users' `model.pt` strictly.

compat/insightface_iresnet50.json and _iresnet100.json: keys `conv1`, `bn1`, `prelu`,
`layer{1..4}.{j}.{bn1, conv1, bn2, prelu, conv2, bn3, downsample.0, downsample.1}`, `bn2`, `fc`,
`features` (a BatchNorm1d whose weight upstream fixes at 1 but still stores).

Unit (pre-activation "improved residual", no SE): BN, 3x3 conv, BN, PReLU, 3x3 conv (carries the
stride), BN, plus the input (1x1 conv stride 2 + BN in the first unit of every stage). Four stages of
64/128/256/512 channels from 112 px down to 7 px; units per stage: r18 2-2-2-2, r34 3-4-6-3,
r50 3-4-14-3, r100 3-13-30-3, r200 6-26-60-6. Head: BN2d, dropout, flatten, Linear(512*7*7, 512),
BatchNorm1d. The output is NOT L2-normalised (insightface's convention); compare by cosine.
Input RGB (p / 255 - 0.5) / 0.5 at 112 x 112 (arcface_torch inference.py).

insightface's ONNX model-zoo files (w600k_r50.onnx, glintr100.onnx, ...) come from these classes but
store BatchNorm folded into convolutions under generated initializer names, so they do not map back
onto this state dict; run them with explainer.recognition.onnx_backed.OnnxRecognizer instead.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from explainer.recognition.arcface_trained import EMBEDDING_DIM, ArcFaceTrainedRecognizer

LAYERS_BY_DEPTH = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 14, 3), 100: (3, 13, 30, 3),
                   200: (6, 26, 60, 6)}
STAGE_CHANNELS = (64, 128, 256, 512)


class IBasicBlock(nn.Module):
    def __init__(self, in_channels: int, channels: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.prelu = nn.PReLU(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels)
        self.downsample = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, channels, 1, stride, bias=False),
                                            nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (x if self.downsample is None else self.downsample(x))


@dataclass(frozen=True)
class IResNetConfig:
    layers: tuple[int, int, int, int] = LAYERS_BY_DEPTH[50]
    embedding_dim: int = EMBEDDING_DIM

    @property
    def depth(self) -> int | None:
        return next((d for d, layers in LAYERS_BY_DEPTH.items() if layers == self.layers), None)


class IResNet(ArcFaceTrainedRecognizer):
    """insightface iresnet recognizer: 112 px ArcFace crops -> raw 512-D embeddings (cosine)."""

    def __init__(self, depth: int | None = 50, layers: tuple[int, int, int, int] | None = None,
                 embedding_dim: int = EMBEDDING_DIM, name: str | None = None) -> None:
        if layers is None:
            if depth not in LAYERS_BY_DEPTH:
                raise ValueError(f"iresnet depth {depth} unknown; known {sorted(LAYERS_BY_DEPTH)} (or pass layers=)")
            layers = LAYERS_BY_DEPTH[depth]
        config = IResNetConfig(tuple(layers), embedding_dim)
        super().__init__(name or f"insightface-r{config.depth or 'custom'}", embedding_dim, l2_normalise=False)
        self.config = config
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.prelu = nn.PReLU(64)
        in_channels = 64
        for stage, (n_units, channels) in enumerate(zip(layers, STAGE_CHANNELS)):
            units = [IBasicBlock(in_channels, channels, 2)] + [IBasicBlock(channels, channels, 1)
                                                               for _ in range(n_units - 1)]
            setattr(self, f"layer{stage + 1}", nn.Sequential(*units))
            in_channels = channels
        self.bn2 = nn.BatchNorm2d(512)
        self.dropout = nn.Dropout(0.0)
        self.fc = nn.Linear(512 * 7 * 7, embedding_dim)
        self.features = nn.BatchNorm1d(embedding_dim)
        nn.init.constant_(self.features.weight, 1.0)
        self.features.weight.requires_grad_(False)  # fixed at 1 upstream

    def embed_normalised(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        assert x.shape[1:] == (512, 7, 7), x.shape
        x = self.fc(self.dropout(torch.flatten(self.bn2(x), 1)))
        return self.finish(self.features(x))


def infer_iresnet_config(state: Mapping[str, torch.Tensor]) -> IResNetConfig:
    """Units per stage and embedding width from an iresnet state dict (KeyError if it is not one)."""
    units = []
    for stage in range(1, 5):
        found = {int(m.group(1)) for k in state if (m := re.match(rf"layer{stage}\.(\d+)\.conv1\.weight$", k))}
        if not found:
            raise KeyError(f"layer{stage}.0.conv1.weight")
        units.append(max(found) + 1)
    return IResNetConfig(tuple(units), state["features.weight"].shape[0])


def build_iresnet(config: IResNetConfig, name: str | None = None) -> IResNet:
    return IResNet(None, config.layers, config.embedding_dim, name=name)
