"""TALFW/DFANet-style transfer counterfactual (Zhong & Deng, "Towards Transferable Adversarial Attack
against Deep Face Recognition", IEEE TIFS 2021).

The perturbation is crafted on a *surrogate* recognizer, never with the target's gradients: at every
step dropout is applied to the surrogate's intermediate feature maps (forward hooks on its convolutions,
DFANet's "dropout on feature maps"), which acts like an ensemble of surrogates and transfers better.
The image attacked is the target's own aligned crop; the surrogate sees it warped (differentiably)
into its own canonical frame.

The target is queried only for decisions, never gradients: once after each finished candidate (one per
budget on the schedule, and only when the surrogate itself is flipped), to learn whether it transferred.
"""
from __future__ import annotations

import contextlib
from dataclasses import replace

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from explainer.core.errors import MismatchError
from explainer.core.runtime import single_threaded
from explainer.counterfactual.objective import DecisionGoal, quantise
from explainer.counterfactual.pgd import EmbeddingPGD
from explainer.counterfactual.result import Counterfactual, finish
from explainer.faces.align import similarity_transform, to_tensor
from explainer.faces.landmarks import Landmarks
from explainer.generation.crop import warp_affine
from explainer.recognition.base import Recognizer
from explainer.recognition.registry import RECOGNIZERS

# Surrogate per target: another offline recognizer, of another architecture where there is one (each
# recognizer's registry entry declares it).
DEFAULT_SURROGATES = {name: entry.surrogate for name, entry in RECOGNIZERS.items() if entry.surrogate}
TRANSFER_SCHEDULE = (4, 8, 16, 32)  # coarser than PGD's: each budget costs full surrogate runs
MOMENTUM = 1.0  # MI-FGSM momentum, which also improves transfer
TRANSFER_STEPS = 10
DROPOUT = 0.1  # DFANet's feature-map dropout rate
# After a member transfers, its perturbation is scaled down toward the probe by bisection on the scale,
# asking the target only for decisions, so the counterfactual is the smallest multiple of what was crafted
# that still flips it (the budget schedule alone is a factor of 2 coarse).
SCALE_ROUNDS = 4


class FeatureDropout(contextlib.AbstractContextManager):
    """Within the context, dropout (rate p, always on) on the output of every convolution of `model`
    but the first (dropping input pixels would be plain noise, not a model ensemble).

    generators: one torch.Generator per sample of the batch, so that each sample's masks come from its own
    seed (an ensemble member's masks do not depend on its batch-mates); None: the global RNG."""

    def __init__(self, model: nn.Module, p: float = DROPOUT, generators: list[torch.Generator] | None = None) -> None:
        self.model, self.p, self.generators = model, p, generators
        self.handles: list = []

    def _drop(self, out: torch.Tensor) -> torch.Tensor:
        if self.generators is None:
            return F.dropout(out, self.p, True)
        assert len(out) == len(self.generators), (out.shape, len(self.generators))
        keep = torch.stack([torch.rand(out.shape[1:], generator=g, dtype=out.dtype) >= self.p for g in self.generators])
        return out * keep / (1 - self.p)

    def __enter__(self) -> FeatureDropout:
        convolutions = [m for m in self.model.modules() if isinstance(m, nn.Conv2d)]
        if not convolutions:
            raise ValueError(f"{type(self.model).__name__} has no convolutions to apply feature dropout to")
        for module in convolutions[1:]:
            self.handles.append(module.register_forward_hook(lambda _m, _i, out: self._drop(out)))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()


class SurrogateView(nn.Module):
    """The surrogate recognizer looking at the target's aligned crops: warp into its frame, then embed."""

    def __init__(self, surrogate: Recognizer, target_to_surrogate: np.ndarray | None) -> None:
        super().__init__()
        self.surrogate = surrogate
        self.matrix = target_to_surrogate  # None: the two crops are the same frame

    def forward(self, target_crops: torch.Tensor) -> torch.Tensor:
        if self.matrix is not None:
            target_crops = warp_affine(target_crops, self.matrix, self.surrogate.crop.size)
        return self.surrogate(target_crops)


def crop_to_crop(landmarks: Landmarks, source: Recognizer, destination: Recognizer) -> np.ndarray | None:
    """2x3 matrix from `source`'s aligned crop of a face to `destination`'s (None when identical), from the
    face's landmarks: photo -> destination composed with the inverse of photo -> source."""
    if source.crop == destination.crop:
        return None

    def photo_to(crop) -> np.ndarray:
        matrix = similarity_transform(landmarks.scheme(crop.scheme), np.asarray(crop.template, np.float64))
        return np.vstack([matrix, [0.0, 0.0, 1.0]])

    return (photo_to(destination.crop) @ np.linalg.inv(photo_to(source.crop)))[:2]


class TransferPGD(EmbeddingPGD):
    """EmbeddingPGD on a SurrogateView with feature dropout at every gradient step; it runs all its steps
    (no early stop on the surrogate: overshooting the surrogate's threshold helps the transfer), with
    MI-FGSM momentum. `generators`: one per sample (FeatureDropout)."""

    def __init__(self, view: SurrogateView, goal: DecisionGoal, eps: float, steps: int = TRANSFER_STEPS,
                 dropout: float = DROPOUT, momentum: float = MOMENTUM,
                 generators: list[torch.Generator] | None = None) -> None:
        super().__init__(view, goal, view.surrogate.metric, eps, steps, stop_early=False, momentum=momentum)
        self.dropout, self.generators = dropout, generators

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with FeatureDropout(self.model.surrogate, self.dropout, self.generators):
            return super().forward(inputs, labels)


@single_threaded
def transfer_counterfactual(target: Recognizer, surrogate: Recognizer, probe_crop: np.ndarray,
                            probe_landmarks: Landmarks, reference_embedding: torch.Tensor,
                            surrogate_reference_embedding: torch.Tensor, *, currently_matches: bool,
                            schedule=TRANSFER_SCHEDULE, steps: int = TRANSFER_STEPS, dropout: float = DROPOUT,
                            seed: int = 0) -> Counterfactual:
    """Craft on `surrogate`, check on `target`. probe_crop: uint8 RGB, the target's aligned crop;
    reference_embedding: the target's embedding of the reference; surrogate_reference_embedding: the
    surrogate's embedding of the reference (from its own crop). Deterministic for a seed."""
    return transfer_counterfactuals(target, surrogate, probe_crop, probe_landmarks, reference_embedding,
                                    surrogate_reference_embedding, currently_matches=currently_matches,
                                    seeds=[seed], schedule=schedule, steps=steps, dropout=dropout)[0]


@single_threaded
def transfer_counterfactuals(target: Recognizer, surrogate: Recognizer, probe_crop: np.ndarray,
                             probe_landmarks: Landmarks, reference_embedding: torch.Tensor,
                             surrogate_reference_embedding: torch.Tensor, *, currently_matches: bool, seeds,
                             schedule=TRANSFER_SCHEDULE, steps: int = TRANSFER_STEPS,
                             dropout: float = DROPOUT, scale_rounds: int = SCALE_ROUNDS) -> list[Counterfactual]:
    """One transfer counterfactual per seed (the seed draws that member's dropout masks), crafted as one
    batch: each member walks the schedule until the target's decision on it flips."""
    if surrogate is target or surrogate.name == target.name:
        raise MismatchError(f"the transfer attack's surrogate must be another recognizer than the target "
                            f"({target.name}); choose another with --surrogate")
    goal = DecisionGoal.for_pair(target, currently_matches)
    # The surrogate aims in the same direction as the target's flip, by its own metric and threshold.
    surrogate_goal = DecisionGoal.for_pair(surrogate, currently_matches)
    view = SurrogateView(surrogate, crop_to_crop(probe_landmarks, target, surrogate)).eval()
    x = to_tensor(probe_crop)
    n = len(seeds)
    reference = reference_embedding.reshape(1, -1).detach().float()
    surrogate_reference = surrogate_reference_embedding.reshape(1, -1).detach().float()
    generators = [torch.Generator().manual_seed(int(seed)) for seed in seeds]

    total_steps, tried, checks, surrogate_flips = [0] * n, [[] for _ in range(n)], [0] * n, [0] * n
    start = torch.zeros(n, *x.shape[1:])
    adversarial = [x] * n
    transferred_at: list[float | None] = [None] * n
    for level in schedule:
        members = [k for k in range(n) if transferred_at[k] is None]
        if not members:
            break
        eps = level / 255
        attack = TransferPGD(view, surrogate_goal, eps, steps, dropout, generators=[generators[k] for k in members])
        attack.start = start[members] if level != schedule[0] else None
        candidates = quantise(attack(x.expand(len(members), -1, -1, -1), surrogate_reference.expand(len(members), -1)))
        with torch.no_grad():
            on_surrogate = surrogate_goal.reached(surrogate.similarity(view(candidates), surrogate_reference))
        for j, k in enumerate(members):
            total_steps[k] += attack.steps_taken
            tried[k].append(eps)
            adversarial[k] = candidates[j:j + 1]
            start[k] = candidates[j] - x[0]
        fooled = [k for j, k in enumerate(members) if bool(on_surrogate[j])]  # only these are worth asking the target
        if not fooled:
            continue
        with torch.no_grad():
            flipped = goal.reached(target.similarity(target(torch.cat([adversarial[k] for k in fooled])), reference))
        for j, k in enumerate(fooled):
            surrogate_flips[k] += 1
            checks[k] += 1
            if bool(flipped[j]):
                transferred_at[k] = eps
    scale, low = [1.0] * n, [0.0] * n
    crafted = [adversarial[k] - x for k in range(n)]  # the perturbation each member crafted (scale 1)
    for _ in range(scale_rounds):
        members = [k for k in range(n) if transferred_at[k] is not None]
        if not members:
            break
        middles = [(low[k] + scale[k]) / 2 for k in members]
        candidates = torch.cat([quantise(x + m * crafted[k]) for m, k in zip(middles, members)])
        with torch.no_grad():
            flipped = goal.reached(target.similarity(target(candidates), reference))
        for j, k in enumerate(members):
            checks[k] += 1
            if bool(flipped[j]):
                adversarial[k], scale[k] = candidates[j:j + 1], middles[j]
            else:
                low[k] = middles[j]
    results = []
    for k in range(n):
        eps = transferred_at[k] * scale[k] if transferred_at[k] is not None else tried[k][-1]
        # finish asks the target once more: the re-check of the saved uint8 image.
        result = finish("transfer", target, probe_crop, adversarial[k], reference, goal, eps, total_steps[k], tried[k],
                         surrogate=surrogate.name, target_checks=checks[k] + 1,
                         details={"dropout": dropout, "surrogate_flipped_budgets": surrogate_flips[k], "seed": seeds[k],
                                  "scale": scale[k]})
        # Transferred: the decision flipped on the target although the target never guided the crafting.
        results.append(replace(result, transferred=result.flipped))
    return results
