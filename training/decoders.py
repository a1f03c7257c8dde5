"""The decoder a trainer works against, named on the command line: a registered decoder
("dcgan-digiface"), a StyleGAN2 checkpoint file (train_decoder's OUT/checkpoint.pt, a rosinality
checkpoint, a bare g_ema state dict), or "tiny-random" (an untrained 16 px generator: smoke tests only).
"""
from __future__ import annotations

from pathlib import Path

import torch

from explainer.core.checkpoint_io import read_checkpoint
from explainer.core.errors import FacexplainError
from explainer.generation.base import Decoder
from explainer.generation.stylegan2 import StyleGAN2Decoder, load_stylegan2

TINY_RANDOM = "tiny-random"


def resolve_decoder(spec: str, mean_latent: str | None = None) -> Decoder:
    """The frozen decoder `spec` names, in eval mode; `mean_latent` (a bare tensor file, e.g. the
    paper's mean_wplus.pth) pins a StyleGAN2 decoder's mean latent."""
    if spec == TINY_RANDOM:
        torch.manual_seed(0)
        decoder = StyleGAN2Decoder(16, style_dim=32, n_mlp=2, channel_max=32, name=TINY_RANDOM)
    elif spec and Path(spec).is_file():
        pinned = read_checkpoint(mean_latent) if mean_latent else None
        decoder = load_stylegan2(spec, mean_latent=pinned, name=f"stylegan2:{Path(spec).name}")
    elif spec:
        from explainer.core.registry import UnknownName
        from explainer.generation.registry import load_decoder

        try:
            decoder = load_decoder(spec)
        except UnknownName:
            raise FacexplainError(f"decoder {spec!r} is neither a registered decoder nor a checkpoint file") from None
    else:
        raise FacexplainError("no decoder given: pass --decoder (a registered decoder name or a StyleGAN2 "
                              "checkpoint such as train_decoder's OUT/checkpoint.pt)")
    return decoder.eval().requires_grad_(False)
