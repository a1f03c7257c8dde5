"""White-box PGD in pixel space with an embedding-space cost.

Classification attack libraries (torchattacks, which this once subclassed) hard-code a cross-entropy on
labels; here the cost is the recognizer's own metric between F(x) and the reference embedding [B, D]
(explainer.counterfactual.objective), and the steps are L∞ sign steps (Madry et al.). The attack is our
own few lines: the library contributed only a base class whose every method was overridden, and its
package pins requests~=2.25.1, which cannot be installed beside the app's and tests' urllib3 2.

Minimal change: budgets are tried in increasing order on a fixed schedule, each warm-started from the
last perturbation, until one flips the decision of the re-quantised image; then a few bisection rounds
between the last budget that failed and the one that flipped narrow the budget down, over whole uint8
levels only: a budget between two levels cannot make a smaller change of the saved image (re-quantised,
a pixel pushed to +1.5 levels lands on +2 as often as on +1), so the measured change of the PNG never
exceeds the budget reported.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from explainer.core.runtime import single_threaded
from explainer.counterfactual.objective import DecisionGoal, quantise
from explainer.counterfactual.result import Counterfactual, finish
from explainer.faces.align import to_tensor
from explainer.recognition.base import Recognizer

# L∞ budgets in uint8 levels; below 1/255 a perturbation does not survive quantisation.
DEFAULT_SCHEDULE = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
STEPS_PER_BUDGET = 10
BISECTION_ROUNDS = 3  # whole levels: enough to close the schedule's widest gap (8 levels) to one level


class EmbeddingPGD:
    """L∞ PGD toward a `DecisionGoal`; stops early, per sample, once the re-quantised image reaches it.

    attack(inputs [B, 3, S, S] in [0, 1], reference embeddings [B, D]) -> adversarial float images.
    `start` (optional, [B, 3, S, S]): a perturbation to warm-start from (clipped to the budget).
    `model` is used as it is (an eval-mode recognizer with frozen weights).
    """

    def __init__(self, model: torch.nn.Module, goal: DecisionGoal, metric, eps: float | torch.Tensor,
                 steps: int = STEPS_PER_BUDGET, alpha: float | None = None, stop_early: bool = True,
                 momentum: float = 0.0) -> None:
        self.model = model
        self.goal, self.metric = goal, metric
        self.steps = int(steps)
        # eps: one budget for the batch, or one per sample ([B]: ensemble members at their own budgets)
        # (computed in float64, then stored as float32: the same numbers a Python float scalar gives)
        eps64 = torch.as_tensor(eps, dtype=torch.float64).reshape(-1, 1, 1, 1)
        alpha64 = (torch.as_tensor(alpha, dtype=torch.float64).reshape(-1, 1, 1, 1) if alpha is not None
                   else 2.5 * eps64 / max(self.steps, 1))
        self.eps, self.alpha = eps64.float(), alpha64.float()
        self.stop_early = stop_early
        self.momentum = momentum  # MI-FGSM (Dong et al. 2018): 0 is plain PGD
        self.start: torch.Tensor | None = None
        self.steps_taken = 0

    def __call__(self, inputs: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        return self.forward(inputs, references)

    def scores(self, images: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        return self.metric(self.model(images), references)

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        references = labels.detach().float()
        assert inputs.ndim == 4 and references.ndim == 2 and len(inputs) == len(references), (inputs.shape, references.shape)
        inputs = inputs.detach()
        delta = torch.zeros_like(inputs) if self.start is None else torch.clamp(self.start.detach(), -self.eps, self.eps)
        adversarial = (inputs + delta).clamp(0, 1)
        active = torch.ones(len(inputs), dtype=torch.bool)
        self.steps_taken = 0
        self.steps_per_sample = torch.zeros(len(inputs), dtype=torch.long)
        velocity = torch.zeros_like(inputs)
        for _ in range(self.steps):
            if self.stop_early:
                active &= ~self._reached_quantised(adversarial, references)
                if not active.any():
                    break
            adversarial.requires_grad_(True)
            objective = self.goal.objective(self.scores(adversarial, references))
            (gradient,) = torch.autograd.grad(objective.sum(), adversarial)
            if self.momentum:
                l1 = gradient.abs().mean(dim=(1, 2, 3), keepdim=True).clamp(min=1e-12)
                gradient = velocity = self.momentum * velocity + gradient / l1
            step = self.alpha * gradient.sign() * active[:, None, None, None]
            with torch.no_grad():
                delta = torch.clamp(adversarial + step - inputs, -self.eps, self.eps)
                adversarial = (inputs + delta).clamp(0, 1)
            self.steps_taken += 1
            self.steps_per_sample += active
        return adversarial.detach()

    @torch.no_grad()
    def _reached_quantised(self, adversarial: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        return self.goal.reached(self.scores(quantise(adversarial), references))


@single_threaded
def pgd_counterfactual(recognizer: Recognizer, probe_crop: np.ndarray, reference_embedding: torch.Tensor, *,
                       currently_matches: bool, schedule=DEFAULT_SCHEDULE, steps: int = STEPS_PER_BUDGET,
                       bisection_rounds: int = BISECTION_ROUNDS, seed: int | None = None) -> Counterfactual:
    """The smallest-budget PGD counterfactual of `probe_crop` (uint8 RGB, the recognizer's aligned crop).

    seed=None: PGD starts from the unperturbed image; an int: from a random start drawn with that seed
    (uniform within the first budget). Deterministic either way: sign steps are exact.
    """
    return pgd_counterfactuals(recognizer, probe_crop, reference_embedding, currently_matches=currently_matches,
                               seeds=[seed], schedule=schedule, steps=steps, bisection_rounds=bisection_rounds)[0]


def random_start(shape, eps: float, seed: int) -> torch.Tensor:
    """A perturbation uniform in [-eps, eps] per pixel, drawn from its own generator (so one member's start
    never depends on how many others were drawn before it)."""
    generator = torch.Generator().manual_seed(int(seed))
    return (torch.rand(shape, generator=generator, dtype=torch.float32) * 2 - 1) * eps


@single_threaded
def pgd_counterfactuals(recognizer: Recognizer, probe_crop: np.ndarray, reference_embedding: torch.Tensor, *,
                        currently_matches: bool, seeds, schedule=DEFAULT_SCHEDULE, steps: int = STEPS_PER_BUDGET,
                        bisection_rounds: int = BISECTION_ROUNDS) -> list[Counterfactual]:
    """One minimal-budget PGD counterfactual per seed (None: no random start), searched as one batch: each
    member walks the budget schedule until its own re-quantised image flips, then bisects its own budget
    (steps, early stops and budgets are per sample). Reproducible for the same seeds; a member computed
    alone gave the same image as in a batch of three on the pair tested (tests/test_ensemble.py)."""
    goal = DecisionGoal.for_pair(recognizer, currently_matches)
    x = to_tensor(probe_crop)
    assert x.shape[-1] == recognizer.crop.size, (x.shape, recognizer.crop.size)
    n = len(seeds)
    reference = reference_embedding.reshape(1, -1).detach().float()
    first = schedule[0] / 255
    starts = [None if seed is None else random_start(x.shape[1:], first, seed) for seed in seeds]
    start = torch.stack([torch.zeros_like(x[0]) if s is None else s for s in starts])
    total_steps, tried = [0] * n, [[] for _ in range(n)]

    def attempt(members: list[int], eps: list[float], starts: torch.Tensor | None) -> tuple[torch.Tensor, list[bool]]:
        attack = EmbeddingPGD(recognizer, goal, recognizer.metric, eps if len(eps) > 1 else eps[0], steps)
        attack.start = starts
        adversarial = quantise(attack(x.expand(len(members), -1, -1, -1), reference.expand(len(members), -1)))
        for j, k in enumerate(members):
            total_steps[k] += int(attack.steps_per_sample[j])
            tried[k].append(eps[j])
        with torch.no_grad():
            reached = goal.reached(recognizer.similarity(recognizer(adversarial), reference))
        return adversarial, [bool(r) for r in reached]

    best: list[torch.Tensor | None] = [None] * n
    last: list[torch.Tensor | None] = [None] * n
    flipped_at: list[float | None] = [None] * n  # budgets in uint8 levels
    failed_at = [0.0] * n
    any_random = any(s is not None for s in starts)
    for level in schedule:
        members = [k for k in range(n) if best[k] is None]
        if not members:
            break
        eps = level / 255
        chosen = start[members] if (any_random or level != schedule[0]) else None
        adversarial, flipped = attempt(members, [eps] * len(members), chosen)
        for j, k in enumerate(members):
            last[k] = adversarial[j:j + 1]
            if flipped[j]:
                best[k], flipped_at[k] = adversarial[j:j + 1], level
            else:
                failed_at[k] = level
                start[k] = adversarial[j] - x[0]
    low, high = list(failed_at), list(flipped_at)
    for _ in range(bisection_rounds):
        middles = {k: whole_level_between(low[k], high[k]) for k in range(n) if best[k] is not None}
        members = [k for k, middle in middles.items() if middle is not None]
        if not members:
            break
        adversarial, flipped = attempt(members, [middles[k] / 255 for k in members],
                                       torch.cat([best[k] - x for k in members]))
        for j, k in enumerate(members):
            if flipped[j]:
                best[k], high[k] = adversarial[j:j + 1], middles[k]
            else:
                low[k] = middles[k]
    results = []
    for k in range(n):
        image, eps = (best[k], high[k] / 255) if best[k] is not None else (last[k], schedule[-1] / 255)
        results.append(finish("pgd", recognizer, probe_crop, image, reference, goal, eps, total_steps[k], tried[k],
                               **({"details": {"seed": seeds[k]}} if seeds[k] is not None else {})))
    return results


def whole_level_between(low: float, high: float) -> int | None:
    """The whole uint8 level halfway between a budget that failed and one that flipped (in levels), rounded
    down; None when no whole level of at least 1 lies strictly between them (nothing left to bisect)."""
    middle = math.floor((low + high) / 2)
    return middle if low < middle < high and middle >= 1 else None
