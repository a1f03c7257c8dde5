"""Recovery: from recognition embeddings to faces "as the model sees them".

Feed-forward: latent = T(z), face = G(latent). Optional refinement then adjusts each latent by a few
Adam steps so that F(crop(G(latent))) comes closer to z, under a prior that keeps the latent where
the decoder makes plausible faces. The recovered face is cropped to the recognizer's frame from the
decoder's known canonical frame (its five-point template), never by running a detector on it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from explainer.generation.base import Decoder
from explainer.generation.crop import crop_to
from explainer.generation.transformer import LatentTransformer
from explainer.recognition.base import Recognizer
from explainer.runtime import single_thread  # noqa: F401 (also imported from here by older callers)


@dataclass(frozen=True)
class RefineSettings:
    steps: int = 30
    lr: float = 0.05
    prior_weight: float = 0.05  # weight of the decoder's latent prior against the identity loss


@dataclass(frozen=True)
class Recovery:
    images: torch.Tensor  # [B, 3, S, S] in [0, 1], the decoder's frame
    latents: torch.Tensor  # [B, n_codes, code_dim]
    similarity: torch.Tensor  # [B] the recognizer's score between F(recovered) and the target embedding
    seconds: float


def identity_loss(recognizer: Recognizer, embeddings: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-sample identity loss [B]: the distance for Euclidean models, 1 - cosine for cosine ones."""
    score = recognizer.similarity(embeddings, targets)
    return 1.0 - score if recognizer.metric.higher_is_closer else score


class Recoverer:
    def __init__(self, recognizer: Recognizer, transformer: LatentTransformer, decoder: Decoder) -> None:
        expected = (transformer.config.n_codes, transformer.config.code_dim)
        if expected != tuple(decoder.latent_shape):
            raise ValueError(f"transformer outputs {expected} latents, decoder {decoder.name} takes {decoder.latent_shape}")
        if transformer.config.embedding_dim != recognizer.embedding_dim:
            raise ValueError(f"transformer takes {transformer.config.embedding_dim}-D embeddings, "
                             f"{recognizer.name} gives {recognizer.embedding_dim}-D")
        self.recognizer, self.transformer, self.decoder = recognizer, transformer, decoder

    def crops(self, images: torch.Tensor) -> torch.Tensor:
        """Decoder-frame images as the recognizer's canonical crops (differentiable)."""
        return crop_to(images, self.decoder.templates, self.recognizer.crop)

    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        return self.recognizer(self.crops(images))

    def refine(self, latents: torch.Tensor, targets: torch.Tensor, settings: RefineSettings) -> torch.Tensor:
        """`settings.steps` Adam steps on each latent, one face at a time.

        Why not batched, and on one thread: the optimisation is chaotic enough that ~1e-7 differences
        (batched vs single convolutions, thread timing) grow into a different, equally good face within
        30 steps, and a forensic result must be reproducible and not depend on its batch-mates.
        """
        with single_thread():
            return torch.cat([self._refine_one(latents[k:k + 1], targets[k:k + 1], settings)
                              for k in range(len(latents))])

    def _refine_one(self, latents: torch.Tensor, targets: torch.Tensor, settings: RefineSettings) -> torch.Tensor:
        latents = latents.detach().clone().requires_grad_(True)
        optimiser = torch.optim.Adam([latents], lr=settings.lr)
        for _ in range(settings.steps):
            optimiser.zero_grad(set_to_none=True)
            loss = identity_loss(self.recognizer, self.embed_images(self.decoder(latents)), targets)
            loss = loss + settings.prior_weight * self.decoder.prior_penalty(latents)
            loss.sum().backward()
            optimiser.step()
        return latents.detach()

    def recover(self, embeddings: torch.Tensor, refine: RefineSettings | None = None,
                batch_size: int = 64) -> Recovery:
        """Recovered faces of [B, D] embeddings; deterministic for the same inputs and settings."""
        start = time.perf_counter()
        images, latents, scores = [], [], []
        for k in range(0, len(embeddings), batch_size):
            targets = embeddings[k:k + batch_size].detach().float()
            if refine is not None and refine.steps > 0:
                with torch.no_grad():  # each start alone too: refinement would amplify batched rounding
                    initial = torch.cat([self.transformer(t[None]) for t in targets])
                latent = self.refine(initial, targets, refine)
            else:
                with torch.no_grad():
                    latent = self.transformer(targets)
            with torch.no_grad():
                image = self.decoder(latent)
                scores.append(self.recognizer.similarity(self.embed_images(image), targets))
            images.append(image)
            latents.append(latent)
        return Recovery(torch.cat(images), torch.cat(latents), torch.cat(scores), time.perf_counter() - start)
