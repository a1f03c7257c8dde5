"""The latent space transformer T: recognition embedding z -> decoder latent (Ren et al., TIFS 2024).

Eight linear layers: four shared, then four in a separate branch per decoder sub-code; the output is a
residual added to the decoder's mean latent. The layout (keys `mapping.{0..3}`, `heads.{i}.{0..3}`,
equalised-learning-rate linear layers, the embedding L2-normalised and scaled by 16, tanh on the
output) is that of the paper's released mapper, so its checkpoints load strictly into this class.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F


class EqualLinear(nn.Module):
    """Linear layer with StyleGAN's equalised learning rate: weights stored at unit scale, multiplied by
    1/sqrt(fan_in) at run time; optional leaky ReLU (slope 0.2) scaled by sqrt(2) to keep the variance."""

    def __init__(self, in_dim: int, out_dim: int, activate: bool, lr_mul: float = 1.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.zeros(out_dim))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activate = activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x, self.weight * self.scale)
        out = out + self.bias * self.lr_mul
        return F.leaky_relu(out, 0.2) * math.sqrt(2) if self.activate else out


@dataclass(frozen=True)
class TransformerConfig:
    embedding_dim: int
    n_codes: int
    code_dim: int
    hidden: int = 512
    shared_layers: int = 4  # the remaining 8 - shared_layers are per code
    input_scale: float = 16.0  # applied to the L2-normalised embedding
    tanh: bool = True  # bound each residual to (-1, 1) as the paper does; scaled by `residual_scale`
    residual_scale: float = 1.0

    def as_dict(self) -> dict:
        return asdict(self)


class LatentTransformer(nn.Module):
    def __init__(self, config: TransformerConfig, mean_latent: torch.Tensor | None = None) -> None:
        super().__init__()
        self.config = config
        c = config
        width = [c.embedding_dim] + [c.hidden] * c.shared_layers
        self.mapping = nn.Sequential(*[EqualLinear(a, b, activate=True) for a, b in zip(width, width[1:])])
        branch = 8 - c.shared_layers
        self.heads = nn.ModuleList(
            nn.Sequential(*[EqualLinear(c.hidden, c.hidden, activate=True) for _ in range(branch - 1)],
                          EqualLinear(c.hidden, c.code_dim, activate=False))
            for _ in range(c.n_codes))
        mean = torch.zeros(c.n_codes, c.code_dim) if mean_latent is None else mean_latent.reshape(c.n_codes, c.code_dim)
        # Not in the state dict: the mean latent belongs to the decoder (the paper ships it separately).
        self.register_buffer("mean_latent", mean.clone().float(), persistent=False)

    def residual(self, embeddings: torch.Tensor) -> torch.Tensor:
        """The offset from the mean latent, [B, n_codes, code_dim]."""
        if embeddings.ndim != 2 or embeddings.shape[1] != self.config.embedding_dim:
            raise ValueError(f"expected embeddings [B, {self.config.embedding_dim}], got {tuple(embeddings.shape)}")
        x = self.mapping(F.normalize(embeddings, dim=1) * self.config.input_scale)
        out = torch.stack([head(x) for head in self.heads], dim=1)
        if self.config.tanh:
            out = torch.tanh(out)
        return out * self.config.residual_scale

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.mean_latent + self.residual(embeddings)
