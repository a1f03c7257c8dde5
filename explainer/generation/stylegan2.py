"""StyleGAN2 generator (Karras et al. 2020) in pure PyTorch, laid out so rosinality's `g_ema` loads strictly.

The paper's decoder is rosinality/stylegan2-pytorch's `Generator(256, 512, 8, channel_multiplier=2)`
trained on FFHQ (`checkpoint/550000.pt`). This module re-implements it without the custom CUDA ops
(upfirdn2d, fused leaky ReLU), so it runs anywhere and its state dict has rosinality's keys and shapes
(see compat/rosinality_stylegan2_G{128,256}.json):

  style.0              PixelNorm (no parameters)
  style.{1..8}         mapping z -> w: EqualLinear(512, 512, lr_mul=0.01) + fused leaky ReLU
  input.input          [1, 512, 4, 4] learned constant
  conv1, to_rgb1       4x4: StyledConv, ToRGB (no skip)
  convs.{2k}           resolution 2^(k+3): StyledConv with 2x upsampling (conv_transpose + FIR blur)
  convs.{2k+1}         same resolution: StyledConv
  to_rgbs.{k}          ToRGB; adds its RGB to the FIR-upsampled RGB skip from the level below
  noises.noise_{i}     [1, 1, 2^r, 2^r] fixed noise maps, r = (i + 5) // 2; i = 0 is conv1's, i = j + 1
                       is convs.{j}'s. Stored in every checkpoint since rosinality f79322a (2020-01).

Channels (channel_multiplier 2, rosinality's default and what the manifests' shapes imply: the 64 px
convs have 256*2 = 512 channels, 128 px 128*2 = 256, 256 px 64*2 = 128): 512 up to 32 px, then
256*cm, 128*cm, 64*cm, ... for 64, 128, 256, ... px.

W+ codes: a size-S generator takes n_codes = 2 log2(S) - 2 codes (14 at 256 px, 12 at 128 px):
  code 0 -> conv1;  code 1 -> to_rgb1 and convs.0;  then for level k (resolution 2^(k+3)):
  convs.{2k} <- code 2k+1,  convs.{2k+1} <- code 2k+2,  to_rgbs.{k} <- code 2k+3,
so every odd code drives a ToRGB and the next level's upsampling conv, and the last code drives only
the last ToRGB. `wplus_layer_map(size)` spells it out.

Inference is deterministic: the stored `noises.noise_{i}` buffers are always used (rosinality's
randomize_noise=False), never fresh noise, so a face depends only on its own latent. The output is
rosinality's image (roughly [-1, 1], no tanh) mapped by (x + 1) / 2 and clamped to [0, 1]: the paper
writes (x + 1) * 0.5 * 255 to uint8 without clamping (lfw_recon.pth2jpg), so values outside wrapped
around there; clamping is the faithful reading for a [0, 1] contract.

The modulated convolution is computed as "scale the input channels by the style, convolve with the
shared weight, rescale each output channel by its demodulation coefficient", which equals rosinality's
per-sample weight modulation (its `fused=False` path) and is a plain, batched convolution on CPU.
"""
from __future__ import annotations

import argparse
import math
import pickle
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from explainer.errors import FacexplainError
from explainer.generation.base import Decoder
from explainer.generation.transformer import EqualLinear
from explainer.recognition.dlib_resnet import DLIB_MEAN_FACE_5

STYLE_DIM = 512
N_MLP = 8
MAPPING_LR_MUL = 0.01  # rosinality's lr_mlp: the mapping network learns 100x slower
BLUR_TAPS = (1, 3, 3, 1)  # rosinality's blur_kernel: binomial FIR, separable
LEAKY_SLOPE = 0.2
MEAN_LATENT_SAMPLES = 4096  # z samples averaged through the mapping for the default mean latent
MEAN_LATENT_SEED = 0


class CheckpointError(FacexplainError, ValueError):
    """A checkpoint could not be read or does not fit the model it was meant for."""


# -- FIR resampling and activation ------------------------------------------------------------------

def fir_kernel(taps: tuple[float, ...] = BLUR_TAPS) -> torch.Tensor:
    """2-D FIR kernel: the outer product of `taps` with itself, normalised to sum 1 (a constant stays)."""
    k = torch.tensor(taps, dtype=torch.float32)
    kernel = torch.outer(k, k)
    return kernel / kernel.sum()


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1,
              pad: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Upsample by zero insertion, pad, FIR-filter, downsample: rosinality's upfirdn2d, per channel.

    x [B, C, H, W]; kernel [kh, kw] (applied as a true convolution, i.e. flipped, like the CUDA op);
    `up - 1` zeros follow every sample; `pad` = (before, after) on both axes (negative crops);
    downsampling keeps every `down`-th sample from the first. Output side: (H*up + pad0 + pad1 - kh) // down + 1.
    """
    batch, channels, height, width = x.shape
    if up > 1:
        x = x.reshape(batch, channels, height, 1, width, 1)
        x = F.pad(x, (0, up - 1, 0, 0, 0, up - 1))
        x = x.reshape(batch, channels, height * up, width * up)
    pad0, pad1 = pad
    x = F.pad(x, (pad0, pad1, pad0, pad1))
    taps = torch.flip(kernel, (0, 1)).to(x)
    weight = taps[None, None].expand(channels, 1, *taps.shape)
    out = F.conv2d(x, weight, stride=down, groups=channels)
    expected = ((height * up + pad0 + pad1 - kernel.shape[0]) // down + 1,
                (width * up + pad0 + pad1 - kernel.shape[1]) // down + 1)
    assert out.shape == (batch, channels, *expected), (out.shape, expected)
    return out


def fused_leaky_relu(x: torch.Tensor, bias: torch.Tensor, slope: float = LEAKY_SLOPE,
                     gain: float = math.sqrt(2)) -> torch.Tensor:
    """leaky_relu(x + bias) * sqrt(2): the sqrt(2) keeps unit variance through the activation."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return F.leaky_relu(x + bias.view(shape), slope) * gain


class PixelNorm(nn.Module):
    """Normalise each z to unit mean square before the mapping network."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)


class MappingLayer(EqualLinear):
    """Mapping-network layer: equalised linear + fused leaky ReLU, at a 100x smaller learning rate."""

    def __init__(self, dim: int) -> None:
        super().__init__(dim, dim, activate=True, lr_mul=MAPPING_LR_MUL)


class Upsample(nn.Module):
    """2x FIR upsampling (ToRGB skips). The kernel is scaled by 4 = factor^2: zero insertion keeps a
    quarter of the samples, so this keeps a constant image constant."""

    def __init__(self, factor: int = 2) -> None:
        super().__init__()
        self.factor = factor
        self.register_buffer("kernel", fir_kernel() * factor ** 2)
        excess = self.kernel.shape[0] - factor
        # centres the filter on the upsampled grid: output side = factor * input side
        self.pad = ((excess + 1) // 2 + factor - 1, excess // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)


class Blur(nn.Module):
    """FIR low-pass after a stride-2 transposed convolution (anti-aliases the upsampling)."""

    def __init__(self, pad: tuple[int, int], gain: float) -> None:
        super().__init__()
        self.register_buffer("kernel", fir_kernel() * gain)
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, pad=self.pad)


# -- the synthesis layers ---------------------------------------------------------------------------

class ModulatedConv2d(nn.Module):
    """Style-modulated convolution: the style scales input channels; demodulation renormalises each
    output channel to unit expected variance (StyleGAN2's replacement for AdaIN)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, style_dim: int,
                 demodulate: bool = True, upsample: bool = False) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.demodulate, self.upsample = demodulate, upsample
        if upsample:
            # conv_transpose (stride 2, no padding) gives 2H + k - 2; the blur's pad brings it to 2H.
            excess = (len(BLUR_TAPS) - 2) - (kernel_size - 1)
            self.blur = Blur(pad=((excess + 1) // 2 + 1, excess // 2 + 1), gain=4.0)
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size ** 2)  # equalised learning rate
        self.weight = nn.Parameter(torch.randn(1, out_channels, in_channels, kernel_size, kernel_size))
        # Styles start at 1 (bias 1), so an untrained layer is an ordinary convolution.
        self.modulation = EqualLinear(style_dim, in_channels, activate=False)
        with torch.no_grad():
            self.modulation.bias.fill_(1.0)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        assert x.shape[1] == self.in_channels, (x.shape, self.in_channels)
        style = self.modulation(w)  # [B, in]
        weight = self.weight[0] * self.scale  # [out, in, k, k]
        x = x * style[:, :, None, None]
        if self.upsample:
            out = self.blur(F.conv_transpose2d(x, weight.transpose(0, 1), stride=2))
        else:
            out = F.conv2d(x, weight, padding=self.kernel_size // 2)
        if self.demodulate:
            # 1 / ||w_o * s||: sum over (in, kh, kw) of (weight * style)^2, without forming it per sample
            energy = style.square() @ weight.square().sum(dim=(2, 3)).t()  # [B, out]
            out = out * torch.rsqrt(energy + 1e-8)[:, :, None, None]
        assert out.shape[:2] == (batch, self.out_channels), out.shape
        return out


class NoiseInjection(nn.Module):
    """Adds a learned multiple of a noise map (here always the fixed, stored one)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        assert noise.shape[-2:] == x.shape[-2:], (noise.shape, x.shape)
        return x + self.weight * noise


class FusedLeakyReLU(nn.Module):
    """Per-channel bias + leaky ReLU * sqrt(2) (rosinality's FusedLeakyReLU; key `activate.bias`)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fused_leaky_relu(x, self.bias)


class StyledConv(nn.Module):
    """Modulated 3x3 conv (optionally upsampling 2x) -> fixed noise -> bias + leaky ReLU."""

    def __init__(self, in_channels: int, out_channels: int, style_dim: int, upsample: bool = False) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, 3, style_dim, upsample=upsample)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.activate(self.noise(self.conv(x, w), noise))


class ToRGB(nn.Module):
    """Modulated 1x1 conv to RGB (no demodulation) + bias, plus the upsampled RGB from the level below."""

    def __init__(self, in_channels: int, style_dim: int, upsample: bool = True) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))
        if upsample:
            self.upsample = Upsample()
        self.conv = ModulatedConv2d(in_channels, 3, 1, style_dim, demodulate=False)

    def forward(self, x: torch.Tensor, w: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        rgb = self.conv(x, w) + self.bias
        if skip is not None:
            rgb = rgb + self.upsample(skip)
        return rgb


class ConstantInput(nn.Module):
    """The learned 4x4 constant the synthesis starts from (key `input.input`)."""

    def __init__(self, channels: int, side: int = 4) -> None:
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, side, side))

    def forward(self, batch: int) -> torch.Tensor:
        return self.input.expand(batch, -1, -1, -1)


# -- geometry: the code-to-layer map and the FFHQ frame ---------------------------------------------

def _log2(size: int) -> int:
    log = int(round(math.log2(size))) if size > 0 else -1
    if log < 3 or 2 ** log != size:
        raise ValueError(f"StyleGAN2 sizes are powers of two from 8 px; got {size}")
    return log


def n_codes_for(size: int) -> int:
    """W+ codes of a size-px generator: 2 log2(size) - 2 (14 at 256, 12 at 128)."""
    return 2 * _log2(size) - 2


def wplus_layer_map(size: int) -> list[tuple[str, ...]]:
    """For each W+ code, the modules it drives (rosinality's Generator.forward order).

    256 px: [("conv1",), ("to_rgb1", "convs.0"), ("convs.1",), ("to_rgbs.0", "convs.2"), ...,
    ("convs.11",), ("to_rgbs.5",)].
    """
    levels = _log2(size) - 2  # resolutions 8 .. size
    layers: list[list[str]] = [["conv1"], ["to_rgb1"]]
    for k in range(levels):
        layers[2 * k + 1].append(f"convs.{2 * k}")
        layers.append([f"convs.{2 * k + 1}"])
        layers.append([f"to_rgbs.{k}"])
    assert len(layers) == n_codes_for(size), (len(layers), size)
    return [tuple(names) for names in layers]


# The FFHQ frame. FFHQ's alignment (NVlabs/ffhq-dataset, download_ffhq.py, recreate_aligned_images)
# is defined on dlib's 68 landmarks: eye_left/right = mean of points 36-41 / 42-47, mouth corners =
# points 48 and 54; x = eye_to_eye - rot90(eye_to_mouth), scaled to max(2 |eye_to_eye|,
# 1.8 |eye_to_mouth|); centre c = eye midpoint + 0.1 eye_to_mouth; the output square is c +- x +- y
# (side 2|x|), resampled to 1024 px; rosinality's prepare_data.py resizes those images whole to
# 256 / 128 px, so the frame scales linearly.
# We run that procedure on dlib's mean face (dlib/image_transforms/interpolation.h,
# get_face_chip_details: mean_face_shape_x/y of points 17-67, in units of the face box; the points
# it uses are copied below), which gives where the FFHQ procedure puts an average face:
#   arcface5 = the two eye centres (the same means FFHQ uses), nose tip (point 30), mouth corners
#              (points 48, 54);
#   dlib5    = dlib's 5-point mean face (DLIB_MEAN_FACE_5, the same face-box units; within 0.003 of
#              points 45, 42, 36, 39, 33 of the 68-point mean face).
# Output: pixel centres (continuous frame coordinate - 0.5), the convention of our crop templates.
# At 256 px: arcface5 (95.5, 120.7) (159.5, 120.7) (127.5, 156.9) (99.0, 188.9) (156.0, 188.9);
# dlib5 (172.2, 120.4) (146.4, 122.3) (82.8, 120.4) (108.6, 122.3) (127.5, 170.5).
# Cross-check: the same procedure on the ArcFace 112 template (a different mean face) lands within
# 1.3 px per coordinate for the eyes and nose and 3.1 px for the mouth corners (ArcFace's mouth is
# narrower and lower) at 256 px.
# These are the frame of an FFHQ-trained generator's *average* face; individual faces and other
# training sets differ (measure a user's generator if it matters).
_DLIB68_MEAN_FACE = {  # point index -> (x, y), face-box units
    30: (0.490127, 0.515625),
    36: (0.121737, 0.216423), 37: (0.187122, 0.178758), 38: (0.265825, 0.179852),
    39: (0.334606, 0.231733), 40: (0.260918, 0.245099), 41: (0.182743, 0.244077),
    42: (0.645647, 0.231733), 43: (0.714428, 0.179852), 44: (0.793132, 0.178758),
    45: (0.858516, 0.216423), 46: (0.797510, 0.244077), 47: (0.719335, 0.245099),
    48: (0.254149, 0.780233), 54: (0.726104, 0.780233),
}


def ffhq_frame(eye_left: np.ndarray, eye_right: np.ndarray, mouth_left: np.ndarray,
               mouth_right: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FFHQ's crop square for a face: (top-left corner, x half-axis, y half-axis), in input units."""
    eye_mid = (eye_left + eye_right) / 2
    eye_to_eye = eye_right - eye_left
    eye_to_mouth = (mouth_left + mouth_right) / 2 - eye_mid
    x = eye_to_eye - np.array([-eye_to_mouth[1], eye_to_mouth[0]])  # flipud(e2m) * [-1, 1]
    x = x / np.hypot(*x) * max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.array([-x[1], x[0]])
    centre = eye_mid + eye_to_mouth * 0.1
    return centre - x - y, x, y


def ffhq_templates(size: int) -> dict[str, tuple[tuple[float, float], ...]]:
    """Five-point templates of the FFHQ frame at `size` px, derived as described above."""
    face = {i: np.array(p) for i, p in _DLIB68_MEAN_FACE.items()}
    eye_left = np.mean([face[i] for i in range(36, 42)], axis=0)
    eye_right = np.mean([face[i] for i in range(42, 48)], axis=0)
    corner, x, y = ffhq_frame(eye_left, eye_right, face[48], face[54])
    side = 2 * np.hypot(*x)

    def to_pixels(p: np.ndarray) -> tuple[float, float]:
        d = np.asarray(p) - corner
        u, v = d @ x / np.hypot(*x) / side, d @ y / np.hypot(*y) / side
        return round(float(u * size - 0.5), 4), round(float(v * size - 0.5), 4)

    arcface5 = (eye_left, eye_right, face[30], face[48], face[54])
    return {"arcface5": tuple(to_pixels(p) for p in arcface5),
            "dlib5": tuple(to_pixels(np.array(p)) for p in DLIB_MEAN_FACE_5)}


FFHQ_TEMPLATES_256 = ffhq_templates(256)
FFHQ_TEMPLATES_128 = ffhq_templates(128)


# -- the decoder ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StyleGAN2Config:
    size: int = 256
    channel_multiplier: int = 2
    style_dim: int = STYLE_DIM
    n_mlp: int = N_MLP
    # Ours, not rosinality's: a cap on every layer's width (512 is rosinality's table unchanged). Narrow
    # generators (e.g. 32 channels) train in seconds on a CPU: the tiny configs of `training`.
    channel_max: int = 512

    def channels(self, resolution: int) -> int:
        """rosinality's channel table: 512 up to 32 px, then (2^14 / resolution) * multiplier; at most
        channel_max."""
        table = 512 if resolution <= 32 else (16384 // resolution) * self.channel_multiplier
        return min(table, self.channel_max)


class StyleGAN2Decoder(Decoder):
    """rosinality's StyleGAN2 generator as a Decoder: W+ latents [B, n_codes, 512] -> RGB [B, 3, S, S]
    in [0, 1], deterministic (stored noise maps), frozen. Construct, then load weights with
    `load_stylegan2` (or `load_state_dict` with a g_ema state dict: it loads strictly)."""

    def __init__(self, size: int = 256, channel_multiplier: int = 2, style_dim: int = STYLE_DIM,
                 n_mlp: int = N_MLP, name: str | None = None, compute_mean_latent: bool = True,
                 channel_max: int = 512) -> None:
        super().__init__()
        self.config = cfg = StyleGAN2Config(size, channel_multiplier, style_dim, n_mlp, channel_max)
        log_size = _log2(size)
        self.name = name or f"stylegan2-{size}"
        self.size = size
        self.latent_shape = (n_codes_for(size), style_dim)
        self.templates = ffhq_templates(size)

        self.style = nn.Sequential(PixelNorm(), *[MappingLayer(style_dim) for _ in range(n_mlp)])
        self.input = ConstantInput(cfg.channels(4))
        self.conv1 = StyledConv(cfg.channels(4), cfg.channels(4), style_dim)
        self.to_rgb1 = ToRGB(cfg.channels(4), style_dim, upsample=False)
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        in_channels = cfg.channels(4)
        for log_res in range(3, log_size + 1):
            out_channels = cfg.channels(2 ** log_res)
            self.convs.append(StyledConv(in_channels, out_channels, style_dim, upsample=True))
            self.convs.append(StyledConv(out_channels, out_channels, style_dim))
            self.to_rgbs.append(ToRGB(out_channels, style_dim))
            in_channels = out_channels
        self.noises = nn.Module()
        self.num_noise_layers = 2 * (log_size - 2) + 1
        for i in range(self.num_noise_layers):
            side = 2 ** ((i + 5) // 2)
            self.noises.register_buffer(f"noise_{i}", torch.randn(1, 1, side, side))

        # The centre the transformer's residual starts from. Not in the state dict (g_ema has none):
        # recomputed from the mapping network after every load_state_dict, unless pinned with
        # set_mean_latent (the paper's mean_wplus.pth).
        self.register_buffer("mean_latent", torch.zeros(self.latent_shape), persistent=False)
        self.mean_latent_source = "mapping (not computed yet)"
        if compute_mean_latent:  # loaders skip it: the load hook computes it for the real weights
            self.refresh_mean_latent()
        self.register_load_state_dict_post_hook(_refresh_after_load)
        self.requires_grad_(False)  # a fixed generator; gradients still flow to the latent
        self.eval()

    # -- latents ------------------------------------------------------------------------------------
    def mapping(self, z: torch.Tensor) -> torch.Tensor:
        """z [B, style_dim] -> w [B, style_dim] through PixelNorm and the n_mlp-layer MLP."""
        assert z.ndim == 2 and z.shape[1] == self.config.style_dim, z.shape
        return self.style(z)

    @torch.no_grad()
    def mapping_mean(self, n: int = MEAN_LATENT_SAMPLES, seed: int = MEAN_LATENT_SEED) -> torch.Tensor:
        """Mean w over `n` z ~ N(0, I) drawn on the CPU with torch seed `seed`, [style_dim]."""
        z = torch.randn(n, self.config.style_dim, generator=torch.Generator().manual_seed(seed))
        return self.mapping(z.to(self.input.input.device)).mean(dim=0)

    def refresh_mean_latent(self, n: int = MEAN_LATENT_SAMPLES, seed: int = MEAN_LATENT_SEED) -> None:
        """mean_latent := the mapping's mean w (n samples, seed), the same for every code."""
        mean = self.mapping_mean(n, seed)
        self.mean_latent.copy_(mean.expand(self.latent_shape))
        self.mean_latent_source = f"mapping mean over {n} z (torch seed {seed})"

    def set_mean_latent(self, mean: torch.Tensor, source: str) -> None:
        """Pin mean_latent (e.g. the paper's mean_wplus.pth): [n_codes, d], [1, n_codes, d] or [d]."""
        mean = torch.as_tensor(mean).detach().float()
        n_codes, dim = self.latent_shape
        if mean.shape in ((dim,), (1, dim)):
            mean = mean.reshape(1, dim).expand(n_codes, dim)
        elif mean.shape == (1, n_codes, dim):
            mean = mean[0]
        if tuple(mean.shape) != (n_codes, dim):
            raise CheckpointError(f"{source}: a mean latent of shape {tuple(mean.shape)} does not fit "
                                  f"{self.name} (expected [{n_codes}, {dim}], [1, {n_codes}, {dim}] or [{dim}])")
        self.mean_latent.copy_(mean)
        self.mean_latent_source = source

    def sample_latents(self, n: int, generator: torch.Generator | None = None,
                       truncation: float = 1.0) -> torch.Tensor:
        """mapping(z) for z ~ N(0, I), the same w on every code, [n, n_codes, d]; truncation < 1 pulls
        each code toward mean_latent (psi-truncation)."""
        device = generator.device if generator is not None else torch.device("cpu")
        z = torch.randn(n, self.config.style_dim, generator=generator, device=device)
        with torch.no_grad():
            w = self.mapping(z.to(self.input.input.device))
        latents = w[:, None, :].expand(n, *self.latent_shape)
        if truncation != 1.0:
            latents = self.mean_latent + truncation * (latents - self.mean_latent)
        return latents.contiguous()

    # -- synthesis ----------------------------------------------------------------------------------
    def noise(self, i: int) -> torch.Tensor:
        return getattr(self.noises, f"noise_{i}")

    def render(self, latent: torch.Tensor, random_noise: bool = False) -> torch.Tensor:
        """rosinality's raw image (about [-1, 1], unclamped: training needs its gradients everywhere).
        random_noise draws fresh per-sample noise maps (training) instead of the stored ones."""
        batch = latent.shape[0]
        assert latent.shape[1:] == self.latent_shape, latent.shape

        def noise(i: int) -> torch.Tensor:
            stored = self.noise(i)
            return torch.randn(batch, *stored.shape[1:], device=stored.device) if random_noise else stored

        x = self.input(batch)
        x = self.conv1(x, latent[:, 0], noise(0))
        rgb = self.to_rgb1(x, latent[:, 1])
        for k, to_rgb in enumerate(self.to_rgbs):
            x = self.convs[2 * k](x, latent[:, 2 * k + 1], noise(2 * k + 1))
            x = self.convs[2 * k + 1](x, latent[:, 2 * k + 2], noise(2 * k + 2))
            rgb = to_rgb(x, latent[:, 2 * k + 3], rgb)
            assert rgb.shape == (batch, 3, 2 ** (k + 3), 2 ** (k + 3)), rgb.shape
        return rgb

    def synthesise(self, latent: torch.Tensor) -> torch.Tensor:
        return ((self.render(latent) + 1.0) / 2.0).clamp(0.0, 1.0)  # rosinality's ~[-1, 1] -> [0, 1]


def _refresh_after_load(module: StyleGAN2Decoder, incompatible_keys) -> None:
    # New weights, new mapping: the default mean latent follows them; a pinned one stays.
    if module.mean_latent_source.startswith("mapping"):
        module.refresh_mean_latent()


# -- loading ----------------------------------------------------------------------------------------

def read_checkpoint(path: str | Path) -> object:
    """torch.load with weights_only=True (no pickled code runs), on the CPU.

    rosinality's train.py pickles its argparse.Namespace under "args" since 2020-07; we allow exactly
    that class in torch's weights-only unpickler. Unpickling a Namespace only creates the object and
    sets attributes from a dict (it defines no __setstate__/__reduce__ logic), so no code runs; any
    other class is still refused.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path}")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            # mmap: a training checkpoint also holds D and both optimisers (~4x g_ema); only the
            # tensors we copy are read. Files older than torch 1.6's zip format cannot be mapped.
            return torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path}: refused to unpickle: it holds Python objects other than tensors, containers and "
            f"argparse.Namespace, and facexplain never executes pickled code. If you trust the file, "
            f"re-save only its generator weights, e.g. torch.save({{'g_ema': torch.load({str(path)!r}, "
            f"weights_only=False)['g_ema']}}, 'g_ema.pt'), and load that. Details: {err}") from None
    except (RuntimeError, EOFError, OSError) as err:
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({err})") from None


def generator_state_dict(checkpoint: object, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The g_ema state dict from a rosinality checkpoint dict, a bare state dict, or a `module.`-
    prefixed (DataParallel) one."""
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f"{source}: expected a dict (a rosinality checkpoint or a state dict), "
                              f"got {type(checkpoint).__name__}")
    if "g_ema" in checkpoint:
        checkpoint = checkpoint["g_ema"]
        source = f"{source}['g_ema']"
        if not isinstance(checkpoint, Mapping):
            raise CheckpointError(f"{source}: expected a state dict, got {type(checkpoint).__name__}")
    elif not any(_strip_module(str(k)).startswith("style.") for k in checkpoint):
        hint = (" It has a training generator 'g' but no 'g_ema': pass checkpoint['g'] explicitly if you "
                "mean to use the non-EMA weights." if "g" in checkpoint else "")
        keys = sorted(map(str, checkpoint))[:12]
        raise CheckpointError(f"{source}: neither a rosinality checkpoint (no 'g_ema') nor a generator "
                              f"state dict (no 'style.*' keys); top-level keys: {keys}.{hint}")
    return {_strip_module(str(k)): v for k, v in checkpoint.items()}


def infer_config(state: Mapping[str, torch.Tensor], source: str = "checkpoint") -> StyleGAN2Config:
    """Size, channel multiplier, style width and mapping depth from a g_ema state dict's keys/shapes."""
    try:
        n_rgb_levels = len({m.group(1) for k in state if (m := re.match(r"to_rgbs\.(\d+)\.", k))})
        n_mlp = len([k for k in state if re.fullmatch(r"style\.\d+\.weight", k)])
        style_dim = state["style.1.weight"].shape[1]
        size = 2 ** (n_rgb_levels + 2)
        channel_max = min(512, state["conv1.conv.weight"].shape[1])  # 4 px width: 512 unless capped
        if channel_max < 512:  # capped (ours): the last level's width, if below the cap, gives the multiplier
            last = state[f"convs.{2 * n_rgb_levels - 1}.conv.weight"].shape[1]
            multiplier = max(1, -(-last * size // 16384)) if size >= 64 else 2  # below 64 px: unused
        else:  # convs.6 is the first 64 px conv: its out channels are 256 * channel_multiplier
            multiplier = state["convs.6.conv.weight"].shape[1] // 256 if size >= 64 else 2
    except (KeyError, IndexError, AttributeError) as err:
        raise CheckpointError(f"{source}: not a rosinality StyleGAN2 generator state dict "
                              f"(could not read {err} from it)") from None
    if n_rgb_levels == 0 or multiplier < 1:
        raise CheckpointError(f"{source}: not a rosinality StyleGAN2 generator state dict "
                              f"({n_rgb_levels} to_rgbs levels, channel multiplier {multiplier})")
    return StyleGAN2Config(size=size, channel_multiplier=multiplier, style_dim=style_dim, n_mlp=n_mlp,
                           channel_max=channel_max)


def load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """module.load_state_dict(state, strict=True), with an error that lists what does not fit."""
    expected = module.state_dict()
    not_tensors = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise CheckpointError(f"{source}: entries that are not tensors: {not_tensors[:8]}")
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
                  for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or mismatched:
        lines = [f"{source} does not fit {getattr(module, 'name', type(module).__name__)}:"]
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched)):
            if keys:
                more = f" ... and {len(keys) - 20} more" if len(keys) > 20 else ""
                lines.append(f"  {len(keys)} {label}: {', '.join(keys[:20])}{more}")
        if missing and all(k.startswith("noises.") for k in missing):
            lines.append("  (the fixed noise maps are missing: checkpoints from rosinality's trainer before "
                         "2020-01-15 lack them; this decoder needs them to be deterministic)")
        raise CheckpointError("\n".join(lines))
    module.load_state_dict(dict(state), strict=True)


def load_stylegan2(path_or_state: str | Path | Mapping, size: int | None = None, *,
                   mean_latent: torch.Tensor | None = None, name: str | None = None) -> StyleGAN2Decoder:
    """A StyleGAN2Decoder from a rosinality checkpoint file ({"g", "d", "g_ema", ...}), a checkpoint
    dict, a bare g_ema state dict or a `module.`-prefixed one. Size and channels come from the keys;
    `size`, when given, must agree. `mean_latent` pins the decoder's mean (else the mapping mean)."""
    source = str(path_or_state) if isinstance(path_or_state, (str, Path)) else "state dict"
    checkpoint = read_checkpoint(path_or_state) if isinstance(path_or_state, (str, Path)) else path_or_state
    state = generator_state_dict(checkpoint, source)
    config = infer_config(state, source)
    if size is not None and size != config.size:
        raise CheckpointError(f"{source}: a {config.size} px generator ({n_codes_for(config.size)} W+ codes), "
                              f"not {size} px")
    decoder = StyleGAN2Decoder(config.size, config.channel_multiplier, config.style_dim, config.n_mlp, name=name,
                               compute_mean_latent=False, channel_max=config.channel_max)
    if mean_latent is not None:  # pinned before loading, so the load hook keeps it
        decoder.set_mean_latent(mean_latent, "given mean latent")
    load_strict(decoder, state, source)
    return decoder


def _strip_module(key: str) -> str:
    return key[len("module."):] if key.startswith("module.") else key
