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

from explainer.core.errors import MismatchError
from explainer.core.runtime import single_thread
from explainer.generation.base import Decoder
from explainer.generation.crop import crop_to
from explainer.generation.transformer import LatentTransformer
from explainer.recognition.base import Recognizer


@dataclass(frozen=True)
class RefineSettings:
    steps: int = 30  # Adam steps; with `tolerance`, the cap
    lr: float = 0.05
    prior_weight: float = 0.05  # weight of the decoder's latent prior against the identity loss
    # Convergence (used by explanations). The plain identity loss has no fixed point: it keeps falling for
    # hundreds of steps while the face drifts, so where refinement stops would decide the face. With an
    # anchor to the transformer's own prediction T(z) (weight x mean squared latent distance) the objective
    # has a minimum near T(z), and refinement stops once the loss has stopped falling: its relative decrease
    # over the last `window` steps is below `tolerance`.
    anchor_weight: float = 0.0
    tolerance: float | None = None
    window: int = 5
    # Where refinement starts (and what the anchor holds it to): "transformer", T(z); or "nearest", the
    # latent of the decoder sample whose F-embedding is nearest to z in the recoverer's StartBank.
    start: str = "transformer"

    def describe(self) -> str:
        start = "T(z)" if self.start == "transformer" else "the nearest bank sample"
        text = "Adam" + ("" if self.start == "transformer" else f" from {start}")
        text += f" (lr {self.lr}, prior weight {self.prior_weight}"
        if self.anchor_weight:
            text += f", anchor to {start} weight {self.anchor_weight}"
        if self.tolerance is None:
            return text + f"), {self.steps} steps"
        return (text + f") until the loss falls by less than {self.tolerance:g} (relative) over {self.window} steps, "
                f"at most {self.steps} steps")


@dataclass(frozen=True)
class StartBank:
    """Decoder samples with their F-embeddings, where refinement may start (RefineSettings.start)."""
    latents: torch.Tensor  # [N, n_codes, code_dim]
    embeddings: torch.Tensor  # [N, D]

    def nearest(self, recognizer: Recognizer, targets: torch.Tensor) -> torch.Tensor:
        """The latents [B, n_codes, code_dim] of the samples nearest to each target by F's metric."""
        picks = []
        for target in targets:  # one at a time: a face must not depend on its batch-mates
            scores = recognizer.similarity(target[None], self.embeddings)
            picks.append(scores.argmax() if recognizer.metric.higher_is_closer else scores.argmin())
        return self.latents[torch.stack(picks)].clone()


@dataclass(frozen=True)
class Recovery:
    images: torch.Tensor  # [B, 3, S, S] in [0, 1], the decoder's frame
    latents: torch.Tensor  # [B, n_codes, code_dim]
    similarity: torch.Tensor  # [B] the recognizer's score between F(recovered) and the target embedding
    seconds: float
    steps: tuple[int, ...] = ()  # refinement steps taken per face (empty: feed-forward)


def identity_loss(recognizer: Recognizer, embeddings: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-sample identity loss [B]: the distance for Euclidean models, 1 - cosine for cosine ones."""
    score = recognizer.similarity(embeddings, targets)
    return 1.0 - score if recognizer.metric.higher_is_closer else score


class Recoverer:
    def __init__(self, recognizer: Recognizer, transformer: LatentTransformer, decoder: Decoder) -> None:
        expected = (transformer.config.n_codes, transformer.config.code_dim)
        if expected != tuple(decoder.latent_shape):
            raise MismatchError(f"The transformer does not fit the decoder: it outputs latents of shape {expected}, "
                                f"decoder {decoder.name} takes {tuple(decoder.latent_shape)}. Use the transformer "
                                "trained for this decoder (or make the pack again).")
        if transformer.config.embedding_dim != recognizer.embedding_dim:
            raise MismatchError(f"The transformer does not fit the recognizer: it takes "
                                f"{transformer.config.embedding_dim}-D embeddings, {recognizer.name} gives "
                                f"{recognizer.embedding_dim}-D. Use the transformer trained on this recognizer.")
        self.recognizer, self.transformer, self.decoder = recognizer, transformer, decoder
        self.start_bank: StartBank | None = None  # set by the pack when a rule starts from the bank

    def crops(self, images: torch.Tensor) -> torch.Tensor:
        """Decoder-frame images as the recognizer's canonical crops (differentiable)."""
        return crop_to(images, self.decoder.templates, self.recognizer.crop)

    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        return self.recognizer(self.crops(images))

    def refine(self, latents: torch.Tensor, targets: torch.Tensor, settings: RefineSettings) -> torch.Tensor:
        """Adam steps on each latent (see RefineSettings), one face at a time.

        Why not batched, and on one thread: the optimisation is chaotic enough that ~1e-7 differences
        (batched vs single convolutions, thread timing) grow into a different, equally good face within
        30 steps, and a forensic result must be reproducible and not depend on its batch-mates.
        """
        return self.refine_counted(latents, targets, settings)[0]

    def refine_counted(self, latents: torch.Tensor, targets: torch.Tensor,
                       settings: RefineSettings) -> tuple[torch.Tensor, list[int]]:
        """As `refine`, with the number of steps each face took."""
        with single_thread():
            done = [self._refine_one(latents[k:k + 1], targets[k:k + 1], settings) for k in range(len(latents))]
        return torch.cat([latent for latent, _ in done]), [steps for _, steps in done]

    def _refine_one(self, latents: torch.Tensor, targets: torch.Tensor,
                    settings: RefineSettings) -> tuple[torch.Tensor, int]:
        anchor = latents.detach().clone()  # the start: T(z), the transformer's own prediction
        latents = latents.detach().clone().requires_grad_(True)
        optimiser = torch.optim.Adam([latents], lr=settings.lr)
        history: list[float] = []
        taken = 0
        for _ in range(settings.steps):
            optimiser.zero_grad(set_to_none=True)
            loss = identity_loss(self.recognizer, self.embed_images(self.decoder(latents)), targets)
            loss = loss + settings.prior_weight * self.decoder.prior_penalty(latents)
            if settings.anchor_weight:
                loss = loss + settings.anchor_weight * (latents - anchor).pow(2).mean(dim=(1, 2))
            if settings.tolerance is not None:
                history.append(float(loss.detach().sum()))
                if len(history) > settings.window and \
                        history[-1 - settings.window] - history[-1] < settings.tolerance * abs(history[-1]):
                    break
            loss.sum().backward()
            optimiser.step()
            taken += 1
        return latents.detach(), taken

    def _starts(self, targets: torch.Tensor, refine: RefineSettings) -> torch.Tensor:
        if refine.start == "transformer":
            return torch.cat([self.transformer(t[None]) for t in targets])
        if refine.start != "nearest":
            raise ValueError(f"unknown refinement start {refine.start!r}; expected transformer or nearest")
        if self.start_bank is None:
            raise ValueError("this recoverer has no start bank; refinement from the nearest sample needs one")
        return self.start_bank.nearest(self.recognizer, targets)

    def recover(self, embeddings: torch.Tensor, refine: RefineSettings | None = None,
                batch_size: int = 64) -> Recovery:
        """Recovered faces of [B, D] embeddings; deterministic for the same inputs and settings.

        All of it on one thread, the starts T(z) included: a start computed on two threads differs from
        one computed on one in its last bits, and refinement grows that into another face."""
        with single_thread():
            return self._recover(embeddings, refine, batch_size)

    def _recover(self, embeddings: torch.Tensor, refine: RefineSettings | None, batch_size: int) -> Recovery:
        start = time.perf_counter()
        images, latents, scores, steps = [], [], [], []
        for k in range(0, len(embeddings), batch_size):
            targets = embeddings[k:k + batch_size].detach().float()
            if refine is not None and refine.steps > 0:
                with torch.no_grad():  # each start alone too: refinement would amplify batched rounding
                    initial = self._starts(targets, refine)
                latent, taken = self.refine_counted(initial, targets, refine)
                steps += taken
            else:
                with torch.no_grad():
                    latent = self.transformer(targets)
            with torch.no_grad():
                image = self.decoder(latent)
                scores.append(self.recognizer.similarity(self.embed_images(image), targets))
            images.append(image)
            latents.append(latent)
        return Recovery(torch.cat(images), torch.cat(latents), torch.cat(scores), time.perf_counter() - start,
                        tuple(steps))
