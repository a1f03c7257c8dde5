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

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from explainer.core.checkpoint_io import CheckpointError
from explainer.generation.base import Decoder
from explainer.generation.ffhq import ffhq_templates
from explainer.generation.transformer import EqualLinear

STYLE_DIM = 512
N_MLP = 8
MAPPING_LR_MUL = 0.01  # rosinality's lr_mlp: the mapping network learns 100x slower
BLUR_TAPS = (1, 3, 3, 1)  # rosinality's blur_kernel: binomial FIR, separable
LEAKY_SLOPE = 0.2
MEAN_LATENT_SAMPLES = 4096  # z samples averaged through the mapping for the default mean latent
MEAN_LATENT_SEED = 0


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


# -- the code-to-layer map -------------------------------------------------------------------------

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
