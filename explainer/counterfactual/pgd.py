"""White-box PGD in pixel space with an embedding-space cost, as a torchattacks Attack.

torchattacks' attacks are classification attacks (a hard-coded cross-entropy on labels); here the
`labels` slot carries the reference embedding [B, D] and the cost is the recognizer's own metric
between F(x) and it (explainer.counterfactual.objective). Steps are L∞ sign steps (Madry et al.).

Minimal change: budgets are tried in increasing order on a fixed schedule, each warm-started from the
last perturbation, until one flips the decision of the re-quantised image; then a few bisection rounds
between the last budget that failed and the one that flipped narrow the budget down.
"""
from __future__ import annotations

import numpy as np
import torch
from torchattacks.attack import Attack

from explainer.counterfactual.objective import DecisionGoal, quantise, single_threaded
from explainer.counterfactual.result import Counterfactual, perturbation_norms
from explainer.faces.align import to_tensor
from explainer.recognition.base import Recognizer

# L∞ budgets in uint8 levels; below 1/255 a perturbation does not survive quantisation.
DEFAULT_SCHEDULE = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
STEPS_PER_BUDGET = 10
BISECTION_ROUNDS = 2


class EmbeddingPGD(Attack):
    """L∞ PGD toward a `DecisionGoal`; stops early, per sample, once the re-quantised image reaches it.

    attack(inputs [B, 3, S, S] in [0, 1], reference embeddings [B, D]) -> adversarial float images.
    `start` (optional, [B, 3, S, S]): a perturbation to warm-start from (clipped to the budget).
    """

    def __init__(self, model: torch.nn.Module, goal: DecisionGoal, metric, eps: float, steps: int = STEPS_PER_BUDGET,
                 alpha: float | None = None, stop_early: bool = True, momentum: float = 0.0) -> None:
        super().__init__("EmbeddingPGD", model)
        self.goal, self.metric = goal, metric
        self.eps, self.steps = float(eps), int(steps)
        self.alpha = float(alpha) if alpha is not None else 2.5 * self.eps / max(self.steps, 1)
        self.stop_early = stop_early
        self.momentum = momentum  # MI-FGSM (Dong et al. 2018): 0 is plain PGD
        self.start: torch.Tensor | None = None
        self.steps_taken = 0

    def scores(self, images: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        return self.metric(self.get_logits(images), references)

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        references = labels.detach().float()
        assert inputs.ndim == 4 and references.ndim == 2 and len(inputs) == len(references), (inputs.shape, references.shape)
        inputs = inputs.detach()
        delta = torch.zeros_like(inputs) if self.start is None else self.start.detach().clamp(-self.eps, self.eps)
        adversarial = (inputs + delta).clamp(0, 1)
        active = torch.ones(len(inputs), dtype=torch.bool)
        self.steps_taken = 0
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
                delta = (adversarial + step - inputs).clamp(-self.eps, self.eps)
                adversarial = (inputs + delta).clamp(0, 1)
            self.steps_taken += 1
        return adversarial.detach()

    @torch.no_grad()
    def _reached_quantised(self, adversarial: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        return self.goal.reached(self.scores(quantise(adversarial), references))


@single_threaded
def pgd_counterfactual(recognizer: Recognizer, probe_crop: np.ndarray, reference_embedding: torch.Tensor, *,
                       currently_matches: bool, schedule=DEFAULT_SCHEDULE, steps: int = STEPS_PER_BUDGET,
                       bisection_rounds: int = BISECTION_ROUNDS) -> Counterfactual:
    """The smallest-budget PGD counterfactual of `probe_crop` (uint8 RGB, the recognizer's aligned crop).

    Deterministic: PGD starts from the unperturbed image (no random start) and sign steps are exact.
    """
    goal = DecisionGoal.for_pair(recognizer, currently_matches)
    x = to_tensor(probe_crop)
    reference = reference_embedding.reshape(1, -1).detach().float()
    assert x.shape[-1] == recognizer.crop.size, (x.shape, recognizer.crop.size)

    total_steps, tried = 0, []

    def attempt(eps: float, start: torch.Tensor | None) -> tuple[torch.Tensor, bool]:
        nonlocal total_steps
        attack = EmbeddingPGD(recognizer, goal, recognizer.metric, eps, steps)
        attack.start = start
        adversarial = quantise(attack(x, reference))
        total_steps += attack.steps_taken
        tried.append(eps)
        with torch.no_grad():
            return adversarial, bool(goal.reached(recognizer.similarity(recognizer(adversarial), reference))[0])

    best, flipped_at, failed_at = None, None, 0.0
    start = None
    for level in schedule:
        eps = level / 255
        adversarial, flipped = attempt(eps, start)
        if flipped:
            best, flipped_at = adversarial, eps
            break
        failed_at, start = eps, adversarial - x
    if best is not None:
        low, high = failed_at, flipped_at
        for _ in range(bisection_rounds):
            middle = (low + high) / 2
            if middle * 255 < 1.0:  # below one level nothing survives quantisation
                break
            adversarial, flipped = attempt(middle, best - x)
            if flipped:
                best, high = adversarial, middle
            else:
                low = middle
        flipped_at = high
    else:
        best, flipped_at = adversarial, schedule[-1] / 255
    return _finish("pgd", recognizer, probe_crop, best, reference, goal, flipped_at, total_steps, tried)


def _finish(attack: str, recognizer: Recognizer, probe_crop: np.ndarray, adversarial: torch.Tensor,
            reference: torch.Tensor, goal: DecisionGoal, eps: float, steps: int, tried: list[float],
            **extra) -> Counterfactual:
    """Re-check the uint8 image on the target and measure the change."""
    image = (adversarial[0].permute(1, 2, 0) * 255).round().clamp(0, 255).byte().numpy()
    with torch.no_grad():
        score = recognizer.similarity(recognizer(to_tensor(image)), reference)
    linf, l2 = perturbation_norms(image, probe_crop)
    return Counterfactual(attack=attack, image=image, flipped=bool(goal.reached(score)[0]), linf_eps=float(eps),
                          linf=linf, l2=l2, similarity=float(score[0]), steps=steps,
                          budgets_tried=tuple(float(e) for e in tried), **extra)

