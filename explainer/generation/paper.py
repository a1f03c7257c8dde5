"""The paper's released checkpoints (RenMin1991/Facial-Attribute-Recovery): mapper, mean W+, generator.

The paper's recovery path is: unit embedding -> IDDEncoder (our LatentTransformer; embedding x 16,
4 shared + 4 per-code equalised linear layers, tanh) -> + mean_wplus -> rosinality StyleGAN2 at
256 px with those 14 W+ codes (see compat/far_recon_notes.json). Its files, relative to the repo
root the paper's code runs from:

  ckpts/delta_256/id_delta_gc_rm_r50.pth   mapper for the IR-SE50 ArcFace backbone (state dict)
  ckpts/delta_256/id_delta_gc_rm_mb.pth    mapper for the MobiFaceNet backbone (state dict)
  mean_wplus.pth                           bare tensor, [14, 512] or [1, 14, 512]
  checkpoint/550000.pt                     rosinality train.py checkpoint; only ['g_ema'] is used

`load_paper_checkpoints(directory)` finds each file either at that relative path or directly in
`directory` (the Baidu / Google Drive downloads are often flattened). The paper's face backbones,

  checkpoint/arcface_r50.pth               IR-SE50 in the paper's layout (compat/far_arcface_r50.json)
  checkpoint/arcface_mb.pth                MobiFaceNet (compat/far_arcface_mb.json)

load with `explainer.packs.catalogue.load_paper_recognizer(directory, backbone)` into our IRSENet /
MobileFaceNetTorch (strictly; a `module.` prefix is stripped as the paper's remove_module_dict does).
One difference: the paper feeds unaligned LFW images resized to 112 px, our recognizers take
ArcFace-aligned 112 px crops.
`explainer.packs.catalogue.load_paper_pack` puts all three together.

Two deliberate differences from the paper's code: our generator uses the stored noise maps
(deterministic) where the paper draws fresh noise each call (randomize_noise=True), and it loads
strictly where the paper used strict=False (which would accept a wrong-size generator silently).
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from explainer.core.checkpoint_io import CheckpointError, load_strict, read_checkpoint, strip_module_prefix
from explainer.core.errors import FacexplainError, InvalidSetting
from explainer.generation.stylegan2 import StyleGAN2Decoder, load_stylegan2
from explainer.generation.transformer import LatentTransformer, TransformerConfig

PAPER_SIZE = 256
PAPER_N_CODES = 14
PAPER_CODE_DIM = 512
PAPER_EMBEDDING_DIM = 512
BACKBONES = ("r50", "mb")

MAPPER_FILES = {backbone: f"ckpts/delta_256/id_delta_gc_rm_{backbone}.pth" for backbone in BACKBONES}
FACE_BACKBONE_FILES = {backbone: f"checkpoint/arcface_{backbone}.pth" for backbone in BACKBONES}
FACE_BACKBONE_LAYOUTS = {"r50": "far_arcface_r50", "mb": "far_arcface_mb"}  # compat/ manifest names
MEAN_WPLUS_FILE = "mean_wplus.pth"
GENERATOR_FILE = "checkpoint/550000.pt"


class PaperCheckpointsMissing(FacexplainError, FileNotFoundError):
    """Some of the paper's checkpoint files are not in the directory given."""


def paper_transformer_config() -> TransformerConfig:
    """The paper's IDDEncoder(14, 8) as our LatentTransformer: 512-d embedding -> 14 x 512 W+."""
    return TransformerConfig(embedding_dim=PAPER_EMBEDDING_DIM, n_codes=PAPER_N_CODES, code_dim=PAPER_CODE_DIM)


def find_paper_file(directory: Path, relative: str) -> Path | None:
    """`relative` under `directory`, else its bare file name directly in `directory`, else None."""
    for candidate in (directory / relative, directory / Path(relative).name):
        if candidate.is_file():
            return candidate
    return None


def load_mean_wplus(path: Path) -> torch.Tensor:
    """mean_wplus.pth as [14, 512] (the file is a bare tensor, [14, 512] or [1, 14, 512])."""
    mean = read_checkpoint(path)
    if not isinstance(mean, torch.Tensor):
        raise CheckpointError(f"{path}: expected a bare tensor, got {type(mean).__name__}")
    if tuple(mean.shape) == (1, PAPER_N_CODES, PAPER_CODE_DIM):
        mean = mean[0]
    if tuple(mean.shape) != (PAPER_N_CODES, PAPER_CODE_DIM):
        raise CheckpointError(f"{path}: mean W+ of shape {tuple(mean.shape)}; the paper's 256 px generator "
                              f"needs [{PAPER_N_CODES}, {PAPER_CODE_DIM}] or [1, {PAPER_N_CODES}, {PAPER_CODE_DIM}]")
    return mean.float()


def load_paper_mapper(path: Path, mean_latent: torch.Tensor | None = None) -> LatentTransformer:
    """id_delta_gc_rm_{r50,mb}.pth (a plain state dict, possibly `module.`-prefixed), strictly."""
    state = read_checkpoint(path)
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path}: expected a state dict, got {type(state).__name__}")
    state, _ = strip_module_prefix(state)
    transformer = LatentTransformer(paper_transformer_config(), mean_latent=mean_latent)
    load_strict(transformer, state, str(path))
    return transformer


def load_paper_checkpoints(directory: str | Path, backbone: str = "r50") -> tuple[LatentTransformer, StyleGAN2Decoder]:
    """The paper's mapper for `backbone` ("r50" | "mb") and its StyleGAN2 256 decoder, both centred on
    mean_wplus.pth. Raises PaperCheckpointsMissing naming every file it could not find."""
    if backbone not in BACKBONES:
        raise InvalidSetting(f"unknown backbone {backbone!r}; the paper ships mappers for {BACKBONES}")
    directory = Path(directory)
    wanted = {"mapper": MAPPER_FILES[backbone], "mean": MEAN_WPLUS_FILE, "generator": GENERATOR_FILE}
    found = {role: find_paper_file(directory, relative) for role, relative in wanted.items()}
    missing = [wanted[role] for role, path in found.items() if path is None]
    if missing:
        raise PaperCheckpointsMissing(
            f"the paper's checkpoints are incomplete in {directory}: missing {', '.join(missing)} "
            f"(looked for each at that relative path and by its file name directly in the directory). "
            f"They come from the paper's repository (RenMin1991/Facial-Attribute-Recovery, README links).")

    mean = load_mean_wplus(found["mean"])
    transformer = load_paper_mapper(found["mapper"], mean_latent=mean)
    decoder = load_stylegan2(found["generator"], size=PAPER_SIZE, mean_latent=mean,
                             name=f"far-stylegan2-{PAPER_SIZE}")
    decoder.mean_latent_source = str(found["mean"])
    assert decoder.latent_shape == (PAPER_N_CODES, PAPER_CODE_DIM), decoder.latent_shape
    return transformer, decoder
