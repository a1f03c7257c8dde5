"""MobileFaceNet in PyTorch checkpoint layouts (512-D ArcFace-trained), loading users' weights strictly.

Not the TFLite port in mobilefacenet.py (a 192-D TensorFlow model): these are the PyTorch networks
people train and share. Two key schemes:

* "treb" scheme (`conv1`, `conv2_dw`, `conv_23`, `conv_3.model.{i}`, ..., `conv_6_dw`, `linear`, `bn`),
  used by TreB1eN/InsightFace_Pytorch `MobileFaceNet(512)` (compat/treb_mobilefacenet.json) and,
  with other stage sizes, by the paper's `MobiFaceNet()` (compat/far_arcface_mb.json);
* insightface arcface_torch `get_mbf()` (`layers.{i}...`, `conv_sep`, `features`;
  compat/insightface_mbf.json): `InsightfaceMBF` below.

Both are the same family: 3x3/2 conv + BN + PReLU, a 3x3 depthwise conv, then three stages; each
stage opens with a stride-2 depthwise bottleneck (1x1 expand + PReLU, 3x3 depthwise /2 + PReLU, 1x1
linear projection) and continues with residual bottlenecks (same with stride 1, + input);
then 1x1 conv to 512 + PReLU, a 7x7 global depthwise conv + BN, Linear(512, 512, no bias), BatchNorm1d.
112 -> 56 -> 28 -> 14 -> 7 px. Input RGB (p / 255 - 0.5) / 0.5 at 112 x 112.

Stages as (in, out, expansion width of the /2 unit, residual units, their expansion width):
  TreB1eN   (64, 64, 128, 4, 128) (64, 128, 256, 6, 256) (128, 128, 512, 2, 256)
  paper     (64, 64, 128, 2, 128) (64, 128, 256, 3, 256) (128, 256, 512, 6, 512)
  insightface mbf (scale 2): stem 128 channels with a grouped (64 groups) 3x3 conv, then
            (128, 128, 128, 4, 128) (128, 256, 256, 6, 256) (256, 256, 512, 2, 256)
TreB1eN and the paper L2-normalise the output; insightface does not.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from explainer.recognition.arcface_trained import EMBEDDING_DIM, ArcFaceTrainedRecognizer

Stage = tuple[int, int, int, int, int]  # (in, out, down expansion, residual units, residual expansion)
TREB_STAGES: tuple[Stage, ...] = ((64, 64, 128, 4, 128), (64, 128, 256, 6, 256), (128, 128, 512, 2, 256))
PAPER_STAGES: tuple[Stage, ...] = ((64, 64, 128, 2, 128), (64, 128, 256, 3, 256), (128, 256, 512, 6, 512))
MBF_BLOCKS = (1, 4, 6, 2)
MBF_SCALE = 2


# -- the TreB1eN / paper key scheme --------------------------------------------------------------------

class ConvBlock(nn.Module):
    """conv (no bias) + BN [+ PReLU]: TreB1eN's Conv_block / Linear_block (keys conv, bn, prelu)."""

    def __init__(self, in_c: int, out_c: int, kernel: int = 1, stride: int = 1, padding: int = 0,
                 groups: int = 1, prelu: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_c, out_c, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_c)
        self.prelu = nn.PReLU(out_c) if prelu else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return self.prelu(x) if self.prelu is not None else x


class DepthWise(nn.Module):
    """Inverted bottleneck: 1x1 expand, 3x3 depthwise (stride), 1x1 linear projection [+ input]."""

    def __init__(self, in_c: int, out_c: int, expansion: int, stride: int, residual: bool) -> None:
        super().__init__()
        self.conv = ConvBlock(in_c, expansion)
        self.conv_dw = ConvBlock(expansion, expansion, 3, stride, 1, groups=expansion)
        self.project = ConvBlock(expansion, out_c, prelu=False)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.conv_dw(self.conv(x)))
        return x + out if self.residual else out


class Residual(nn.Module):
    def __init__(self, channels: int, units: int, expansion: int) -> None:
        super().__init__()
        self.model = nn.Sequential(*[DepthWise(channels, channels, expansion, 1, residual=True) for _ in range(units)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


@dataclass(frozen=True)
class MobileFaceNetConfig:
    stages: tuple[Stage, ...] = TREB_STAGES
    embedding_dim: int = EMBEDDING_DIM


class MobileFaceNetTorch(ArcFaceTrainedRecognizer):
    """TreB1eN-scheme MobileFaceNet; `stages` picks TreB1eN's (default) or the paper's (PAPER_STAGES)."""

    def __init__(self, stages: tuple[Stage, ...] = TREB_STAGES, embedding_dim: int = EMBEDDING_DIM,
                 name: str | None = None) -> None:
        stages = tuple(tuple(s) for s in stages)
        if len(stages) != 3 or stages[0][0] != 64:
            raise ValueError(f"expected three stages starting at 64 channels, got {stages}")
        default = {TREB_STAGES: "treb-mobilefacenet", PAPER_STAGES: "far-mobifacenet"}.get(stages, "mobilefacenet-custom")
        super().__init__(name or default, embedding_dim, l2_normalise=True)
        self.config = MobileFaceNetConfig(stages, embedding_dim)
        self.conv1 = ConvBlock(3, 64, 3, 2, 1)
        self.conv2_dw = ConvBlock(64, 64, 3, 1, 1, groups=64)
        for (in_c, out_c, down_exp, units, res_exp), (down, res) in zip(
                stages, (("conv_23", "conv_3"), ("conv_34", "conv_4"), ("conv_45", "conv_5"))):
            setattr(self, down, DepthWise(in_c, out_c, down_exp, 2, residual=False))
            setattr(self, res, Residual(out_c, units, res_exp))
        last = stages[-1][1]
        self.conv_6_sep = ConvBlock(last, 512)
        self.conv_6_dw = ConvBlock(512, 512, 7, groups=512, prelu=False)
        self.linear = nn.Linear(512, embedding_dim, bias=False)
        self.bn = nn.BatchNorm1d(embedding_dim)

    def embed_normalised(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv2_dw(self.conv1(x))
        x = self.conv_3(self.conv_23(x))
        x = self.conv_4(self.conv_34(x))
        x = self.conv_5(self.conv_45(x))
        x = self.conv_6_dw(self.conv_6_sep(x))
        assert x.shape[1:] == (512, 1, 1), x.shape
        return self.finish(self.bn(self.linear(torch.flatten(x, 1))))


def infer_mobilefacenet_config(state: Mapping[str, torch.Tensor]) -> MobileFaceNetConfig:
    """Stage sizes from a TreB1eN-scheme state dict (KeyError if it is not one)."""
    stages = []
    for down, res in (("conv_23", "conv_3"), ("conv_34", "conv_4"), ("conv_45", "conv_5")):
        expand = state[f"{down}.conv.conv.weight"]  # [expansion, in, 1, 1]
        out_c = state[f"{down}.project.conv.weight"].shape[0]
        units = {int(m.group(1)) for k in state if (m := re.match(rf"{res}\.model\.(\d+)\.conv\.conv\.weight$", k))}
        res_exp = state[f"{res}.model.0.conv.conv.weight"].shape[0] if units else expand.shape[0]
        stages.append((expand.shape[1], out_c, expand.shape[0], len(units), res_exp))
    return MobileFaceNetConfig(tuple(stages), state["bn.weight"].shape[0])


def build_mobilefacenet(config: MobileFaceNetConfig, name: str | None = None) -> MobileFaceNetTorch:
    return MobileFaceNetTorch(config.stages, config.embedding_dim, name=name)


# -- the insightface arcface_torch key scheme (nested `layers`) ----------------------------------------

class SeqConv(nn.Module):
    """conv (no bias) + BN [+ PReLU] as `layers.{0,1,2}` (arcface_torch's ConvBlock / LinearBlock)."""

    def __init__(self, in_c: int, out_c: int, kernel: int = 1, stride: int = 1, padding: int = 0,
                 groups: int = 1, prelu: bool = True) -> None:
        super().__init__()
        parts: list[nn.Module] = [nn.Conv2d(in_c, out_c, kernel, stride, padding, groups=groups, bias=False),
                                  nn.BatchNorm2d(out_c)]
        if prelu:
            parts.append(nn.PReLU(out_c))
        self.layers = nn.Sequential(*parts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class SeqDepthWise(nn.Module):
    def __init__(self, in_c: int, out_c: int, expansion: int, stride: int, residual: bool) -> None:
        super().__init__()
        self.layers = nn.Sequential(SeqConv(in_c, expansion), SeqConv(expansion, expansion, 3, stride, 1, groups=expansion),
                                    SeqConv(expansion, out_c, prelu=False))
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(x)
        return x + out if self.residual else out


class SeqResidual(nn.Module):
    def __init__(self, channels: int, units: int, expansion: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(*[SeqDepthWise(channels, channels, expansion, 1, True) for _ in range(units)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class GlobalDepthwiseHead(nn.Module):
    """7x7 depthwise conv + BN, flatten, Linear (no bias), BatchNorm1d: keys `layers.{0,2,3}`."""

    def __init__(self, embedding_dim: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(SeqConv(512, 512, 7, groups=512, prelu=False), nn.Flatten(),
                                    nn.Linear(512, embedding_dim, bias=False), nn.BatchNorm1d(embedding_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


@dataclass(frozen=True)
class MBFConfig:
    blocks: tuple[int, int, int, int] = MBF_BLOCKS
    scale: int = MBF_SCALE
    embedding_dim: int = EMBEDDING_DIM


class InsightfaceMBF(ArcFaceTrainedRecognizer):
    """insightface arcface_torch MobileFaceNet (`mbf`): 112 px ArcFace crops -> raw 512-D (cosine)."""

    def __init__(self, blocks: tuple[int, int, int, int] = MBF_BLOCKS, scale: int = MBF_SCALE,
                 embedding_dim: int = EMBEDDING_DIM, name: str | None = None) -> None:
        super().__init__(name or "insightface-mbf", embedding_dim, l2_normalise=False)
        self.config = MBFConfig(tuple(blocks), scale, embedding_dim)
        c64, c128 = 64 * scale, 128 * scale
        stem: list[nn.Module] = [SeqConv(3, c64, 3, 2, 1)]
        # one unit: a grouped 3x3 conv (64 groups); more: residual bottlenecks at expansion 128
        stem.append(SeqConv(c64, c64, 3, 1, 1, groups=64) if blocks[0] == 1 else SeqResidual(c64, blocks[0], 128))
        self.layers = nn.ModuleList(stem + [
            SeqDepthWise(c64, c64, 128, 2, False), SeqResidual(c64, blocks[1], 128),
            SeqDepthWise(c64, c128, 256, 2, False), SeqResidual(c128, blocks[2], 256),
            SeqDepthWise(c128, c128, 512, 2, False), SeqResidual(c128, blocks[3], 256),
        ])
        self.conv_sep = SeqConv(c128, 512)
        self.features = GlobalDepthwiseHead(embedding_dim)

    def embed_normalised(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        x = self.conv_sep(x)
        assert x.shape[1:] == (512, 7, 7), x.shape
        return self.finish(self.features(x))


def infer_mbf_config(state: Mapping[str, torch.Tensor]) -> MBFConfig:
    """Blocks, scale and width from an arcface_torch mbf state dict (KeyError if it is not one)."""
    scale = state["layers.0.layers.0.weight"].shape[0] // 64

    def units(index: int) -> int:
        found = {int(m.group(1)) for k in state if (m := re.match(rf"layers\.{index}\.layers\.(\d+)\.layers\.0\.layers\.0\.weight$", k))}
        return len(found)
    first = 1 if "layers.1.layers.0.weight" in state else units(1)
    return MBFConfig((first, units(3), units(5), units(7)), scale, state["features.layers.3.weight"].shape[0])


def build_mbf(config: MBFConfig, name: str | None = None) -> InsightfaceMBF:
    return InsightfaceMBF(config.blocks, config.scale, config.embedding_dim, name=name)
