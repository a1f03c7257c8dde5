"""The result of a counterfactual search, and how every attack finishes one: the uint8 image re-checked on
the target and the change measured."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from explainer.counterfactual.objective import DecisionGoal
from explainer.faces.align import to_tensor
from explainer.recognition.base import Recognizer


@dataclass(frozen=True)
class Counterfactual:
    attack: str  # "pgd" or "transfer"
    image: np.ndarray  # uint8 RGB [S, S, 3]: the counterfactual aligned crop, as saved
    flipped: bool  # the target's decision on the saved (uint8) image is flipped
    linf_eps: float  # the L∞ budget that flipped, in [0, 1] pixel units (the largest tried when none did)
    linf: float  # measured L∞ of (uint8 counterfactual - uint8 original), [0, 1] units
    l2: float  # measured L2 over all pixels and channels, [0, 1] units
    similarity: float  # the target's score between the counterfactual and the reference
    steps: int  # gradient steps taken
    budgets_tried: tuple[float, ...]
    transferred: bool | None = None  # transfer attack only: did the surrogate's flip carry to the target
    surrogate: str | None = None
    target_checks: int = 0  # transfer: decisions asked of the target (candidates the surrogate flipped + the final re-check)
    details: dict = field(default_factory=dict)

    @property
    def linf_255(self) -> int:
        """The measured L∞ change of the saved image, in whole uint8 levels: the figure to show (linf_eps is
        the search's budget)."""
        return round(self.linf * 255)


def perturbation_norms(adversarial: np.ndarray, original: np.ndarray) -> tuple[float, float]:
    """(L∞, L2) of the difference of two uint8 images, in [0, 1] pixel units."""
    delta = (adversarial.astype(np.float64) - original.astype(np.float64)) / 255
    return float(np.abs(delta).max()), float(np.sqrt((delta ** 2).sum()))


def finish(attack: str, recognizer: Recognizer, probe_crop: np.ndarray, adversarial: torch.Tensor,
           reference: torch.Tensor, goal: DecisionGoal, eps: float, steps: int, tried: list[float],
           **extra) -> Counterfactual:
    """The Counterfactual of `adversarial` ([1, 3, S, S] float): saved as uint8, re-checked on the target
    (one more decision asked of it) and measured against `probe_crop`."""
    image = (adversarial[0].permute(1, 2, 0) * 255).round().clamp(0, 255).byte().numpy()
    with torch.no_grad():
        score = recognizer.similarity(recognizer(to_tensor(image)), reference)
    linf, l2 = perturbation_norms(image, probe_crop)
    return Counterfactual(attack=attack, image=image, flipped=bool(goal.reached(score)[0]), linf_eps=float(eps),
                          linf=linf, l2=l2, similarity=float(score[0]), steps=steps,
                          budgets_tried=tuple(float(e) for e in tried), **extra)
