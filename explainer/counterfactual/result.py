"""The result of a counterfactual search."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Counterfactual:
    attack: str  # "pgd" or "transfer"
    image: np.ndarray  # uint8 RGB [S, S, 3]: the counterfactual aligned crop, as saved
    flipped: bool  # the target's decision on the saved (uint8) image is flipped
    linf_eps: float  # the L∞ budget that flipped, in [0, 1] pixel units (the largest tried when none did)
    linf: float  # measured L∞ of (uint8 counterfactual - uint8 original), [0, 1] units: what reports print
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
        """The measured L∞ change of the saved image, in whole uint8 levels."""
        return round(self.linf * 255)

    def summary(self) -> dict:
        """Plain JSON-able fields (no image). linf_255 is the measured change of the saved PNG in uint8 levels,
        the figure to show; linf_eps is the search's budget."""
        return {"attack": self.attack, "flipped": self.flipped, "linf_eps": self.linf_eps,
                "linf_eps_255": self.linf_eps * 255, "linf": self.linf, "linf_255": self.linf_255, "l2": self.l2,
                "similarity": self.similarity, "steps": self.steps, "budgets_tried": list(self.budgets_tried),
                "transferred": self.transferred, "surrogate": self.surrogate,
                "target_checks": self.target_checks, **self.details}


def measured_linf_text(counterfactual: dict) -> str:
    """How writers state a counterfactual's size: the measured L∞ of the saved PNG in levels ("2/255"),
    never the search's budget (a report written before linf_255 existed: from its measured linf)."""
    levels = counterfactual.get("linf_255")
    return f"{round(counterfactual['linf'] * 255) if levels is None else levels}/255"


def recovered_score_text(counterfactual: dict) -> str:
    """The model's score of the counterfactual's recovered face (the probe's recovered latent moved by
    T(z_cf) - T(z_probe)) against the reference, as writers add it beside the counterfactual's own score."""
    moved = counterfactual.get("recovered_to_reference")
    if not moved:
        return ""
    return (f"; its recovered face (the probe's, moved by T(z_cf) − T(z_probe)) scores {moved['counterfactual']:.4f} "
            f"against the reference (the probe's recovered face {moved['probe']:.4f})")


def perturbation_norms(adversarial: np.ndarray, original: np.ndarray) -> tuple[float, float]:
    """(L∞, L2) of the difference of two uint8 images, in [0, 1] pixel units."""
    delta = (adversarial.astype(np.float64) - original.astype(np.float64)) / 255
    return float(np.abs(delta).max()), float(np.sqrt((delta ** 2).sum()))
