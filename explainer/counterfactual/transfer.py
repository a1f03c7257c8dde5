"""TALFW/DFANet-style transfer counterfactual (Zhong & Deng, "Towards Transferable Adversarial Attack
against Deep Face Recognition", IEEE TIFS 2021), never with the target's gradients.

The perturbation is crafted on an *ensemble of surrogates*, the offline recognizers other than the target
(or one the user names), each looking at the target's aligned crop warped (differentiably) into its own
frame. Three things make the change carry to a model it was not crafted on:
  - dropout on the surrogates' intermediate feature maps at every step (DFANet's "dropout on feature
    maps"), which acts like a larger ensemble of surrogates;
  - input diversity (Xie et al. 2019): at every step, with probability DIVERSITY, the crop is shrunk by a
    random factor and placed at a random offset on a black frame before the surrogates see it;
  - MI-FGSM momentum (Dong et al. 2018) over the ensemble's summed objective (each surrogate's own goal in
    its own metric, divided by its threshold so that none dominates by scale).
The target is queried only for decisions, never gradients: every CHECK_EVERY steps on every member still
searching (one that flipped stops), then during the bisection on the scale of what was crafted, and once
more on the saved uint8 image.
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
from explainer.counterfactual.result import Counterfactual, finish
from explainer.faces.align import similarity_transform, to_tensor
from explainer.faces.landmarks import Landmarks
from explainer.generation.crop import warp_affine
from explainer.recognition.base import Recognizer
from explainer.recognition.registry import RECOGNIZERS

TRANSFER_SCHEDULE = (16, 32)  # L∞ budgets in uint8 levels; the scale bisection below refines the budget
TRANSFER_STEPS = 15  # steps per budget, each warm-started from the last budget's perturbation
CHECK_EVERY = 5  # steps between the decisions asked of the target (a member that flipped stops)
MOMENTUM = 1.0  # MI-FGSM momentum
DROPOUT = 0.0  # DFANet's feature-map dropout rate
DIVERSITY = 0.7  # probability of a random shrink-and-pad of the crop at a step
SHRINK = 0.85  # the smallest shrink factor
# After a member transfers, its perturbation is scaled down toward the probe by bisection on the scale,
# asking the target only for decisions, so the counterfactual is the smallest multiple of what was crafted
# that still flips it (the budget schedule alone is a factor of 2 coarse).
SCALE_ROUNDS = 5


def ensemble_for(target: str) -> list[str]:
    """The surrogates of a transfer attack on recognizer `target`: every offline recognizer but the target."""
    return [name for name in RECOGNIZERS if name != target]


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


class SurrogateEnsemble:
    """The surrogates' summed objective toward the flip, each in its own metric and frame, divided by its own
    threshold (a distance of 0.6 and a cosine of 0.3 are then alike)."""

    def __init__(self, views: list[SurrogateView], goals: list[DecisionGoal], references: list[torch.Tensor]) -> None:
        self.views, self.goals, self.references = views, goals, references

    def objective(self, images: torch.Tensor) -> torch.Tensor:
        """Per sample: higher = further toward the flip, summed over the surrogates."""
        total = 0
        for view, goal, reference in zip(self.views, self.goals, self.references):
            score = view.surrogate.similarity(view(images), reference)
            total = total + goal.objective(score) / max(abs(goal.threshold), 1e-6)
        return total

    @torch.no_grad()
    def fooled(self, images: torch.Tensor) -> torch.Tensor:
        """Per sample: how many surrogates the images flip (for the record)."""
        return sum(goal.reached(view.surrogate.similarity(view(images), reference)).long()
                   for view, goal, reference in zip(self.views, self.goals, self.references))


def diverse(images: torch.Tensor, generators: list[torch.Generator], p: float = DIVERSITY,
            shrink: float = SHRINK) -> torch.Tensor:
    """Input diversity: each sample, with probability p (drawn from its own generator), shrunk by a factor in
    [shrink, 1] and placed at a random offset on black; differentiable (an affine resampling)."""
    thetas = []
    for g in generators:
        u = torch.rand(4, generator=g, dtype=torch.float64)
        if u[0] >= p:
            thetas.append([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
            continue
        r = shrink + (1 - shrink) * float(u[1])
        tx, ty = ((1 - r) * (2 * float(v) - 1) for v in u[2:])  # the shrunk crop's centre, in [-1, 1] units
        thetas.append([[1 / r, 0.0, -tx / r], [0.0, 1 / r, -ty / r]])
    grid = F.affine_grid(torch.tensor(thetas, dtype=images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def craft(ensemble: SurrogateEnsemble, inputs: torch.Tensor, start: torch.Tensor | None, eps: float, steps: int,
          generators: list[torch.Generator], dropout: float = DROPOUT, momentum: float = MOMENTUM,
          velocity: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """`steps` MI-FGSM sign steps of size 2.5 eps / TRANSFER_STEPS within the L∞ ball of radius eps around
    `inputs`, on the ensemble's objective under feature dropout and input diversity (no early stop on the
    surrogates: overshooting them helps the transfer). Returns the float images and the momentum, to go on."""
    alpha = 2.5 * eps / TRANSFER_STEPS
    delta = torch.zeros_like(inputs) if start is None else start.clamp(-eps, eps)
    adversarial = (inputs + delta).clamp(0, 1)
    velocity = torch.zeros_like(inputs) if velocity is None else velocity
    with contextlib.ExitStack() as stack:
        for view in ensemble.views if dropout > 0 else []:  # rate 0: no hooks, no masks drawn
            stack.enter_context(FeatureDropout(view.surrogate, dropout, generators))
        for _ in range(steps):
            adversarial.requires_grad_(True)
            objective = ensemble.objective(diverse(adversarial, generators))
            (gradient,) = torch.autograd.grad(objective.sum(), adversarial)
            l1 = gradient.abs().mean(dim=(1, 2, 3), keepdim=True).clamp(min=1e-12)
            velocity = momentum * velocity + gradient / l1
            with torch.no_grad():
                delta = torch.clamp(adversarial + alpha * velocity.sign() - inputs, -eps, eps)
                adversarial = (inputs + delta).clamp(0, 1)
    return adversarial.detach(), velocity


@single_threaded
def transfer_counterfactual(target: Recognizer, surrogates: list[Recognizer], probe_crop: np.ndarray,
                            probe_landmarks: Landmarks, reference_embedding: torch.Tensor,
                            surrogate_references: list[torch.Tensor], *, currently_matches: bool,
                            seed: int = 0, **settings) -> Counterfactual:
    """Craft on `surrogates`, check on `target`. probe_crop: uint8 RGB, the target's aligned crop;
    reference_embedding: the target's embedding of the reference; surrogate_references: each surrogate's
    embedding of the reference (from its own crop). Deterministic for a seed."""
    return transfer_counterfactuals(target, surrogates, probe_crop, probe_landmarks, reference_embedding,
                                    surrogate_references, currently_matches=currently_matches, seeds=[seed],
                                    **settings)[0]


@single_threaded
def transfer_counterfactuals(target: Recognizer, surrogates: list[Recognizer], probe_crop: np.ndarray,
                             probe_landmarks: Landmarks, reference_embedding: torch.Tensor,
                             surrogate_references: list[torch.Tensor], *, currently_matches: bool, seeds,
                             schedule=TRANSFER_SCHEDULE, steps: int = TRANSFER_STEPS, dropout: float = DROPOUT,
                             scale_rounds: int = SCALE_ROUNDS) -> list[Counterfactual]:
    """One transfer counterfactual per seed (the seed draws that member's dropout masks and input diversity),
    crafted as one batch: each member walks the schedule until the target's decision on it flips."""
    if not surrogates or any(s is target or s.name == target.name for s in surrogates):
        raise MismatchError(f"the transfer attack's surrogates must be recognizers other than the target "
                            f"({target.name}); choose another with --surrogate")
    goal = DecisionGoal.for_pair(target, currently_matches)
    # Each surrogate aims in the same direction as the target's flip, by its own metric and threshold.
    ensemble = SurrogateEnsemble(
        [SurrogateView(s, crop_to_crop(probe_landmarks, target, s)).eval() for s in surrogates],
        [DecisionGoal.for_pair(s, currently_matches) for s in surrogates],
        [r.reshape(1, -1).detach().float() for r in surrogate_references])
    x = to_tensor(probe_crop)
    n = len(seeds)
    reference = reference_embedding.reshape(1, -1).detach().float()
    generators = [torch.Generator().manual_seed(int(seed)) for seed in seeds]

    total_steps, tried, checks, fooled = [0] * n, [[] for _ in range(n)], [0] * n, [0] * n
    adversarial = [x] * n
    velocity = torch.zeros(n, *x.shape[1:])
    transferred_at: list[float | None] = [None] * n
    for level in schedule:
        eps = level / 255
        for k in range(n):
            if transferred_at[k] is None:
                tried[k].append(eps)
        # The budget's steps in rounds of CHECK_EVERY, each followed by one decision asked of the target on every
        # member still searching; a member whose decision flipped stops there.
        for done in range(0, steps, CHECK_EVERY):
            members = [k for k in range(n) if transferred_at[k] is None]
            if not members:
                break
            chunk = min(CHECK_EVERY, steps - done)
            start = torch.cat([adversarial[k] - x for k in members])
            crafted, moved = craft(ensemble, x.expand(len(members), -1, -1, -1), start, eps, chunk,
                                   [generators[k] for k in members], dropout, velocity=velocity[members])
            candidates = quantise(crafted)
            with torch.no_grad():
                flipped = goal.reached(target.similarity(target(candidates), reference))  # decisions only
            surrogates_fooled = ensemble.fooled(candidates)
            for j, k in enumerate(members):
                total_steps[k] += chunk
                checks[k] += 1
                adversarial[k], velocity[k] = candidates[j:j + 1], moved[j]
                fooled[k] = int(surrogates_fooled[j])
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
    names = ", ".join(s.name for s in surrogates)
    results = []
    for k in range(n):
        eps = transferred_at[k] * scale[k] if transferred_at[k] is not None else tried[k][-1]
        # finish asks the target once more: the re-check of the saved uint8 image.
        result = finish("transfer", target, probe_crop, adversarial[k], reference, goal, eps, total_steps[k], tried[k],
                        surrogate=names, target_checks=checks[k] + 1,
                        details={"dropout": dropout, "surrogates_fooled": fooled[k], "seed": seeds[k],
                                 "scale": scale[k]})
        # Transferred: the decision flipped on the target although the target never guided the crafting.
        results.append(replace(result, transferred=result.flipped))
    return results
