"""StyleGAN2 discriminator (residual architecture) in pure PyTorch, laid out so rosinality's `d` loads strictly.

rosinality/stylegan2-pytorch's `Discriminator(size, channel_multiplier=2)` is what users' training
checkpoints hold under "d" (compat/rosinality_stylegan2_D{128,256}.json; the paper's seed repository
defines the same class, compat/far_stylegan2_D256.json). Its state-dict layout:

  convs.0              from-RGB: 1x1 equalised conv (no bias) + `.1.bias` fused leaky ReLU
  convs.{1..L}         residual blocks, one per halving from `size` down to 4 px:
                         conv1  3x3 conv, same channels, fused leaky ReLU
                         conv2  FIR blur (`.0.kernel`) + 3x3 stride-2 conv + fused leaky ReLU (`.2.bias`)
                         skip   FIR blur + 1x1 stride-2 conv, no bias, no activation
                       output (main + skip) / sqrt(2)
  final_conv           3x3 conv on the 4x4 map plus one minibatch-stddev channel, fused leaky ReLU
  final_linear         EqualLinear(16 C4 -> C4) + leaky ReLU, then EqualLinear(C4 -> 1): the logit

Channels follow the generator's table (`StyleGAN2Config.channels`): 512 up to 32 px, then
(2^14 / resolution) * channel_multiplier. `channel_max` caps every width, which only a tiny CPU
configuration uses (e.g. 16 px at 32 channels); checkpoints never do.

Images go in as rosinality trains them: RGB in [-1, 1] (x * 2 - 1 of our [0, 1] images).
The FIR kernels of the downsampling layers are stored buffers ([4, 4], outer([1, 3, 3, 1]) / 64, sum 1):
they are in every rosinality checkpoint, so they are persistent here too.
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
from explainer.generation.stylegan2_network import FusedLeakyReLU, _log2, fir_kernel, upfirdn2d
from explainer.generation.transformer import EqualLinear

STDDEV_GROUP = 4  # minibatch-stddev group size (rosinality: min(batch, 4))


@dataclass(frozen=True)
class DiscriminatorConfig:
    size: int = 256
    channel_multiplier: int = 2
    channel_max: int = 512  # caps every width; < 512 only for tiny CPU configurations

    def channels(self, resolution: int) -> int:
        """rosinality's channel table, capped at channel_max."""
        full = 512 if resolution <= 32 else (16384 // resolution) * self.channel_multiplier
        return min(full, self.channel_max)


class EqualConv2d(nn.Module):
    """Conv2d with StyleGAN's equalised learning rate: weight stored at unit scale, scaled by
    1/sqrt(fan_in) at run time."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size ** 2)
        self.stride, self.padding = stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, stride=self.stride, padding=self.padding)


class DownBlur(nn.Module):
    """FIR low-pass before a stride-2 convolution (anti-aliases the downsampling). Key `kernel`."""

    def __init__(self, pad: tuple[int, int]) -> None:
        super().__init__()
        self.register_buffer("kernel", fir_kernel())
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, pad=self.pad)


class ConvLayer(nn.Sequential):
    """[blur ->] equalised conv [-> bias + leaky ReLU * sqrt(2)], as one Sequential so the keys are
    rosinality's (`0.weight`, `1.bias`, or `0.kernel`, `1.weight`, `2.bias` when downsampling)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, downsample: bool = False,
                 activate: bool = True) -> None:
        layers: list[nn.Module] = []
        if downsample:
            # taps - 2 + k - 1 extra pixels: the blur then a valid stride-2 conv give exactly half the side
            excess = (4 - 2) + (kernel_size - 1)
            layers.append(DownBlur(((excess + 1) // 2, excess // 2)))
            layers.append(EqualConv2d(in_channels, out_channels, kernel_size, stride=2, bias=False))
        else:
            layers.append(EqualConv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2,
                                      bias=False))
        if activate:  # the bias lives in the activation (rosinality's FusedLeakyReLU)
            layers.append(FusedLeakyReLU(out_channels))
        super().__init__(*layers)


class ResBlock(nn.Module):
    """Two 3x3 convs (the second halving the side) plus a 1x1 strided skip, summed at unit variance."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = ConvLayer(in_channels, in_channels, 3)
        self.conv2 = ConvLayer(in_channels, out_channels, 3, downsample=True)
        self.skip = ConvLayer(in_channels, out_channels, 1, downsample=True, activate=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2)


def minibatch_stddev(x: torch.Tensor, group_size: int = STDDEV_GROUP) -> torch.Tensor:
    """Append one channel: the mean standard deviation of the features over a group of samples.

    Samples b and b + B/G (G = min(B, group_size)) share a group, rosinality's grouping; lets the
    discriminator see a lack of variety across the batch (mode collapse).
    """
    batch, channels, height, width = x.shape
    group = min(batch, group_size)
    if batch % group:
        raise ValueError(f"minibatch stddev: batch {batch} is not divisible by its group size {group}")
    grouped = x.reshape(group, batch // group, channels, height, width)
    std = torch.sqrt(grouped.var(dim=0, unbiased=False) + 1e-8)  # [B/G, C, H, W]
    std = std.mean(dim=(1, 2, 3)).reshape(batch // group, 1, 1, 1).repeat(group, 1, height, width)
    return torch.cat([x, std], dim=1)


class StyleGAN2Discriminator(nn.Module):
    """rosinality's Discriminator: RGB [B, 3, S, S] in [-1, 1] -> realness logits [B, 1].

    B must be a multiple of min(B, 4) (the minibatch-stddev groups)."""

    def __init__(self, size: int = 256, channel_multiplier: int = 2, channel_max: int = 512) -> None:
        super().__init__()
        self.config = cfg = DiscriminatorConfig(size, channel_multiplier, channel_max)
        log_size = _log2(size)
        self.size = size
        self.name = f"stylegan2-d-{size}"
        blocks: list[nn.Module] = [ConvLayer(3, cfg.channels(size), 1)]
        in_channels = cfg.channels(size)
        for log_res in range(log_size, 2, -1):  # size -> size/2 -> ... -> 4
            out_channels = cfg.channels(2 ** (log_res - 1))
            blocks.append(ResBlock(in_channels, out_channels))
            in_channels = out_channels
        self.convs = nn.Sequential(*blocks)
        top = cfg.channels(4)
        self.final_conv = ConvLayer(in_channels + 1, top, 3)
        self.final_linear = nn.Sequential(EqualLinear(top * 4 * 4, top, activate=True),
                                          EqualLinear(top, 1, activate=False))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        batch = images.shape[0]
        if images.ndim != 4 or images.shape[1:] != (3, self.size, self.size):
            raise ValueError(f"{self.name}: expected images [B, 3, {self.size}, {self.size}], "
                             f"got {tuple(images.shape)}")
        x = self.convs(images)
        assert x.shape[2:] == (4, 4), x.shape
        x = self.final_conv(minibatch_stddev(x))
        logits = self.final_linear(x.reshape(batch, -1))
        assert logits.shape == (batch, 1), logits.shape
        return logits


# -- loading ----------------------------------------------------------------------------------------

def discriminator_state_dict(checkpoint: object, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The `d` state dict from a rosinality checkpoint dict, a bare D state dict or a `module.`-prefixed one."""
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f"{source}: expected a dict (a rosinality checkpoint or a state dict), "
                              f"got {type(checkpoint).__name__}")
    checkpoint, source, _ = unwrap(checkpoint, ("d",), source)
    state, _ = strip_module_prefix(checkpoint)
    if "final_linear.1.weight" not in state:
        raise CheckpointError(f"{source}: not a rosinality StyleGAN2 discriminator state dict "
                              f"(no 'final_linear.1.weight'); keys: {sorted(state)[:12]}")
    return state


def infer_discriminator_config(state: Mapping[str, torch.Tensor], source: str = "checkpoint") -> DiscriminatorConfig:
    """Size, channel multiplier and width cap from a D state dict's keys and shapes."""
    try:
        n_blocks = len({m.group(1) for k in state if (m := re.match(r"convs\.(\d+)\.conv1\.", k))})
        size = 2 ** (n_blocks + 2)
        from_rgb = state["convs.0.0.weight"].shape[0]
        top = state["final_linear.1.weight"].shape[1]
    except (KeyError, IndexError, AttributeError) as err:
        raise CheckpointError(f"{source}: not a rosinality StyleGAN2 discriminator state dict "
                              f"(could not read {err})") from None
    if top < 512:  # a capped (tiny) network: every width is min(table, cap)
        return DiscriminatorConfig(size, 2, top)
    multiplier = from_rgb // (16384 // size) if size >= 64 else 2
    return DiscriminatorConfig(size, max(multiplier, 1), 512)


def load_discriminator(path_or_state: str | Path | Mapping, size: int | None = None) -> StyleGAN2Discriminator:
    """A StyleGAN2Discriminator from a rosinality checkpoint file or dict (its "d"), a bare D state dict
    or a `module.`-prefixed one, loaded strictly. `size`, when given, must agree with the keys."""
    checkpoint, source = read_if_path(path_or_state)
    state = discriminator_state_dict(checkpoint, source)
    config = infer_discriminator_config(state, source)
    if size is not None and size != config.size:
        raise CheckpointError(f"{source}: a {config.size} px discriminator, not {size} px")
    discriminator = StyleGAN2Discriminator(config.size, config.channel_multiplier, config.channel_max)
    load_strict(discriminator, state, source)
    return discriminator
