"""The paper's guide encoder: image -> StyleGAN2 W+ latent, a ResNet-50 + FPN with one head per code.

Ren et al. train their latent transformer with a guide loss L_guide that pulls the transformer's latent
toward the latent this auxiliary encoder reads from the face image. Their seed repository defines it as
`pspEncoderv2(resnet50(omega_only=True), num_latents=[3, 4, 7], depth=50)` (weights
`ckpts/delta_256/delta_gc_000018.pth`); this module re-implements it so those weights load strictly
(compat/far_guide_encoder_pspEncoderv2.json, 690 entries):

  mean_latent          buffer: the decoder's mean W+ ([1, 14, 512] in the manifest; its real shape is
                       whatever the paper's mean_wplus.pth holds, so the loader takes it from the file)
  fpn.backbone         torchvision-style ResNet-50 (Bottleneck, stride on the 3x3, blocks 3-4-6-3),
                       no pooling head; features of layer2 (1/8), layer3 (1/16), layer4 (1/32)
  fpn.output{1,2,3}    3x3 conv (bias) + BatchNorm + ReLU to 512 channels, top-down summed:
                       p8 = out3(c4); p16 = out2(c3) + up(p8); p32 = out1(c2) + up(p16)
                       (bilinear 2x, align_corners=True; pN is N x N for a 256 px input)
  mapping1.{0..2}      3 codes from p8, mapping2.{0..3} 4 codes from p16, mapping3.{0..6} 7 from p32:
                       each a stack of stride-2 3x3 convs (bias) down to 1 x 1, BatchNorm +
                       LeakyReLU(0.01) between them, tanh after the last (keys convs.{0,1,3,4,...})

  latent = mean_latent + 2 * tanh-deltas, codes in generator order (coarse codes from the coarsest map).

Input: RGB in [0, 1] (our decoders' range), any size; it is mapped to [-1, 1] (the paper's
Normalize(0.5, 0.5)) and resized bilinearly (align_corners=True, as the paper's delta_recon) to
`input_size`. BatchNorm makes the output depend on train/eval mode: call .eval() for inference.

Options for small runs: `width` (ResNet base width, 64 in the paper), `blocks`, `code_dim` (the FPN
and code width, 512 in the paper = the generator's style_dim), `input_size` (>= 64, a power of two),
`codes_per_level` (how many codes each FPN level produces; (3, 4, 7) for a 14-code 256 px generator).
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from explainer.core.checkpoint_io import CheckpointError, load_strict, read_if_path, strip_module_prefix, unwrap

PAPER_CODES_PER_LEVEL = (3, 4, 7)  # from the 1/32, 1/16 and 1/8 feature maps: 14 codes at 256 px
MAPPING_SLOPE = 0.01  # nn.LeakyReLU's default slope, which the paper's heads use
DELTA_SCALE = 2.0  # latent = mean + 2 * tanh(...)


@dataclass(frozen=True)
class GuideEncoderConfig:
    codes_per_level: tuple[int, int, int] = PAPER_CODES_PER_LEVEL
    code_dim: int = 512
    width: int = 64  # ResNet base width: layer k has width * 2^(k-1) planes, 4x that out
    blocks: tuple[int, int, int, int] = (3, 4, 6, 3)  # ResNet-50
    input_size: int = 256
    mean_latent_shape: tuple[int, ...] | None = None  # None: [1, n_codes, code_dim] (the encoder stores it resolved)

    @property
    def n_codes(self) -> int:
        return sum(self.codes_per_level)


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck: 1x1 reduce, 3x3 (carries the stride), 1x1 expand (x4), BN after each."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


class ResNetFeatures(nn.Module):
    """ResNet stem + four stages; returns the stage-2, -3 and -4 features (strides 8, 16, 32)."""

    def __init__(self, width: int = 64, blocks: tuple[int, int, int, int] = (3, 4, 6, 3)) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        in_channels = width
        for stage, n_blocks in enumerate(blocks):
            planes = width * 2 ** stage
            stride = 1 if stage == 0 else 2
            layer = [Bottleneck(in_channels, planes, stride)]
            in_channels = planes * Bottleneck.expansion
            layer += [Bottleneck(in_channels, planes) for _ in range(n_blocks - 1)]
            setattr(self, f"layer{stage + 1}", nn.Sequential(*layer))
        self.out_channels = tuple(width * 2 ** stage * Bottleneck.expansion for stage in (1, 2, 3))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, stride=2, padding=1)
        c2 = self.layer2(self.layer1(x))
        c3 = self.layer3(c2)
        c4 = self.layer4(c3)
        return c2, c3, c4


def _conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=True),
                         nn.BatchNorm2d(out_channels), nn.ReLU())


class FeaturePyramid(nn.Module):
    """Top-down pyramid on the ResNet features: 1/32, 1/16 and 1/8 maps of `channels` each."""

    def __init__(self, backbone: ResNetFeatures, channels: int) -> None:
        super().__init__()
        self.backbone = backbone
        c2, c3, c4 = backbone.out_channels
        self.output1 = _conv_bn_relu(c2, channels)
        self.output2 = _conv_bn_relu(c3, channels)
        self.output3 = _conv_bn_relu(c4, channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c2, c3, c4 = self.backbone(x)
        coarse = self.output3(c4)
        middle = self.output2(c3) + F.interpolate(coarse, scale_factor=2, mode="bilinear", align_corners=True)
        fine = self.output1(c2) + F.interpolate(middle, scale_factor=2, mode="bilinear", align_corners=True)
        return coarse, middle, fine


class CodeHead(nn.Module):
    """One W+ code from a `side` x `side` map: log2(side) stride-2 convs down to 1 x 1, tanh at the end."""

    def __init__(self, channels: int, side: int) -> None:
        super().__init__()
        n_convs = int(round(math.log2(side)))
        assert n_convs >= 1 and 2 ** n_convs == side, side
        layers: list[nn.Module] = []
        for _ in range(n_convs - 1):
            layers += [nn.Conv2d(channels, channels, 3, stride=2, padding=1, bias=True),
                       nn.BatchNorm2d(channels), nn.LeakyReLU(MAPPING_SLOPE)]
        layers += [nn.Conv2d(channels, channels, 3, stride=2, padding=1, bias=True), nn.Tanh()]
        self.convs = nn.Sequential(*layers)

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        out = self.convs(feature)
        assert out.shape[2:] == (1, 1), out.shape
        return out.flatten(1)  # [B, channels]


class GuideEncoder(nn.Module):
    """Image [B, 3, H, W] in [0, 1] -> W+ latent [B, n_codes, code_dim] (the paper's pspEncoderv2)."""

    def __init__(self, codes_per_level: tuple[int, int, int] = PAPER_CODES_PER_LEVEL, code_dim: int = 512,
                 width: int = 64, blocks: tuple[int, int, int, int] = (3, 4, 6, 3), input_size: int = 256,
                 mean_latent: torch.Tensor | None = None,
                 mean_latent_shape: tuple[int, ...] | None = None) -> None:
        super().__init__()
        n_codes = sum(codes_per_level)
        shape = (1, n_codes, code_dim) if mean_latent_shape is None else tuple(mean_latent_shape)
        self.config = cfg = GuideEncoderConfig(tuple(codes_per_level), code_dim, width, tuple(blocks), input_size,
                                               shape)
        if input_size < 64 or 2 ** int(round(math.log2(input_size))) != input_size:
            raise ValueError(f"guide encoder input_size must be a power of two >= 64, got {input_size}")
        self.latent_shape = (cfg.n_codes, code_dim)
        if math.prod(shape) != cfg.n_codes * code_dim:
            raise ValueError(f"mean_latent_shape {shape} does not hold {cfg.n_codes} x {code_dim} values")
        # Persistent: the paper stores the mean W+ inside the encoder's checkpoint.
        self.register_buffer("mean_latent", torch.zeros(shape))
        if mean_latent is not None:
            self.set_mean_latent(mean_latent)
        self.fpn = FeaturePyramid(ResNetFeatures(width, cfg.blocks), code_dim)
        sides = (input_size // 32, input_size // 16, input_size // 8)
        for level, (n, side) in enumerate(zip(cfg.codes_per_level, sides)):
            setattr(self, f"mapping{level + 1}", nn.ModuleList(CodeHead(code_dim, side) for _ in range(n)))

    def set_mean_latent(self, mean: torch.Tensor) -> None:
        """The decoder's mean W+ ([n_codes, d], [1, n_codes, d], or [d] for every code)."""
        mean = torch.as_tensor(mean).detach().float()
        if mean.numel() == self.config.code_dim:
            mean = mean.reshape(1, self.config.code_dim).expand(*self.latent_shape)
        if mean.numel() != self.mean_latent.numel():
            raise ValueError(f"a mean latent of shape {tuple(mean.shape)} does not fit {self.latent_shape}")
        with torch.no_grad():
            self.mean_latent.copy_(mean.reshape(self.mean_latent.shape))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"guide encoder: expected images [B, 3, H, W], got {tuple(images.shape)}")
        batch = images.shape[0]
        x = images * 2.0 - 1.0
        size = self.config.input_size
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=True)
        maps = self.fpn(x)
        heads = (self.mapping1, self.mapping2, self.mapping3)
        deltas = torch.stack([head(feature) for level, feature in zip(heads, maps) for head in level], dim=1)
        assert deltas.shape == (batch, *self.latent_shape), deltas.shape
        return self.mean_latent.reshape(1, *self.latent_shape) + DELTA_SCALE * deltas


# -- loading ----------------------------------------------------------------------------------------

def guide_encoder_state_dict(checkpoint: object, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """A guide-encoder state dict from a bare / `module.`-prefixed one or a {"state_dict": ...} wrapper."""
    checkpoint, source, _ = unwrap(checkpoint, ("state_dict",), source)
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f"{source}: expected a state dict, got {type(checkpoint).__name__}")
    state, _ = strip_module_prefix(checkpoint)
    if "fpn.backbone.conv1.weight" not in state or "mapping1.0.convs.0.weight" not in state:
        raise CheckpointError(f"{source}: not a guide-encoder (pspEncoderv2) state dict; keys: {sorted(state)[:12]}")
    return state


def infer_guide_encoder_config(state: Mapping[str, torch.Tensor], source: str = "checkpoint") -> GuideEncoderConfig:
    """Every constructor option of GuideEncoder from a state dict's keys and shapes."""
    def count(pattern: str) -> int:
        return len({m.group(1) for k in state if (m := re.match(pattern, k))})
    try:
        codes = tuple(count(rf"mapping{level}\.(\d+)\.") for level in (1, 2, 3))
        blocks = tuple(count(rf"fpn\.backbone\.layer{stage}\.(\d+)\.") for stage in (1, 2, 3, 4))
        width = state["fpn.backbone.conv1.weight"].shape[0]
        code_dim = state["mapping1.0.convs.0.weight"].shape[0]
        coarse_convs = count(r"mapping1\.0\.convs\.(\d+)\.weight") - (count(r"mapping1\.0\.convs\.(\d+)\.running_mean"))
        mean_shape = tuple(state["mean_latent"].shape)
    except (KeyError, IndexError, AttributeError) as err:
        raise CheckpointError(f"{source}: not a guide-encoder state dict (could not read {err})") from None
    # the coarsest map (1/32 of the input) is halved coarse_convs times down to 1 x 1
    return GuideEncoderConfig(codes, code_dim, width, blocks, 32 * 2 ** coarse_convs, mean_shape)


def load_guide_encoder(path_or_state: str | Path | Mapping) -> GuideEncoder:
    """A GuideEncoder (in eval mode) from the paper's checkpoint file or a state dict, loaded strictly."""
    checkpoint, source = read_if_path(path_or_state)
    state = guide_encoder_state_dict(checkpoint, source)
    config = infer_guide_encoder_config(state, source)
    encoder = GuideEncoder(config.codes_per_level, config.code_dim, config.width, config.blocks, config.input_size,
                           mean_latent_shape=config.mean_latent_shape)
    load_strict(encoder, state, source)
    return encoder.eval()
