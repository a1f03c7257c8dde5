"""StyleGAN2 decoders from files: rosinality checkpoints, bare or `module.`-prefixed g_ema state dicts.

The network is in explainer.generation.stylegan2_network, the FFHQ frame it draws faces in in
explainer.generation.ffhq, file reading in explainer.core.checkpoint_io; their public names are
re-exported here, so `from explainer.generation.stylegan2 import StyleGAN2Decoder, load_stylegan2`
stays the one import a caller needs.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch

from explainer.core.checkpoint_io import (  # noqa: F401 (re-exported)
    CheckpointError,
    load_strict,
    read_checkpoint,
    read_if_path,
    strip_module_prefix,
    unwrap,
)
from explainer.generation.ffhq import FFHQ_TEMPLATES_128, FFHQ_TEMPLATES_256, ffhq_frame, ffhq_templates  # noqa: F401
from explainer.generation.stylegan2_network import (  # noqa: F401 (re-exported)
    BLUR_TAPS,
    LEAKY_SLOPE,
    MAPPING_LR_MUL,
    MEAN_LATENT_SAMPLES,
    MEAN_LATENT_SEED,
    N_MLP,
    STYLE_DIM,
    Blur,
    ConstantInput,
    FusedLeakyReLU,
    MappingLayer,
    ModulatedConv2d,
    NoiseInjection,
    PixelNorm,
    StyledConv,
    StyleGAN2Config,
    StyleGAN2Decoder,
    ToRGB,
    Upsample,
    _log2,
    fir_kernel,
    fused_leaky_relu,
    n_codes_for,
    upfirdn2d,
    wplus_layer_map,
)


def generator_state_dict(checkpoint: object, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The g_ema state dict from a rosinality checkpoint dict, a bare state dict, or a `module.`-
    prefixed (DataParallel) one."""
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f"{source}: expected a dict (a rosinality checkpoint or a state dict), "
                              f"got {type(checkpoint).__name__}")
    checkpoint, source, wrapper = unwrap(checkpoint, ("g_ema",), source, accept=lambda value: True)
    if wrapper is not None and not isinstance(checkpoint, Mapping):
        raise CheckpointError(f"{source}: expected a state dict, got {type(checkpoint).__name__}")
    state, _ = strip_module_prefix(checkpoint)
    if wrapper is None and not any(k.startswith("style.") for k in state):
        hint = (" It has a training generator 'g' but no 'g_ema': pass checkpoint['g'] explicitly if you "
                "mean to use the non-EMA weights." if "g" in checkpoint else "")
        keys = sorted(map(str, checkpoint))[:12]
        raise CheckpointError(f"{source}: neither a rosinality checkpoint (no 'g_ema') nor a generator "
                              f"state dict (no 'style.*' keys); top-level keys: {keys}.{hint}")
    return state


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


def load_stylegan2(path_or_state: str | Path | Mapping, size: int | None = None, *,
                   mean_latent: torch.Tensor | None = None, name: str | None = None) -> StyleGAN2Decoder:
    """A StyleGAN2Decoder from a rosinality checkpoint file ({"g", "d", "g_ema", ...}), a checkpoint
    dict, a bare g_ema state dict or a `module.`-prefixed one. Size and channels come from the keys;
    `size`, when given, must agree. `mean_latent` pins the decoder's mean (else the mapping mean)."""
    checkpoint, source = read_if_path(path_or_state)
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
