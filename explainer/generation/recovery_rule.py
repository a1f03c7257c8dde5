"""The recovery rule: the one way facexplain turns an embedding into a face, wherever it does.

`explain`, `facexplain recover`, `analyze --refine-steps N`, `bench recover` and `pack create`'s short
benchmark all recover with `recovery_rule(cap)`, so the face the CLI writes is the app's face and the
recovery benchmark measures the recovery the app uses.

The rule: start at the transformer's prediction T(z), take Adam steps (lr REFINE_LR) on the identity loss
plus the decoder's prior, anchored to T(z) (weight ANCHOR_WEIGHT x mean squared latent distance), until
the loss falls by less than TOLERANCE (relative) over RefineSettings.window steps, at most `cap` steps.
Why anchored and stopped by convergence: the plain identity loss has no fixed point, so a fixed step count
would decide the face; the anchor gives the objective a minimum near T(z) (RefineSettings).
The values were chosen by `facexplain bench stability` (README).
"""
from __future__ import annotations

from explainer.generation.recoverer import RefineSettings

REFINE_CAP = 40
TOLERANCE = 1e-3
ANCHOR_WEIGHT = 1.0
REFINE_LR = 0.1


def recovery_rule(cap: int = REFINE_CAP, tolerance: float = TOLERANCE) -> RefineSettings | None:
    """The rule with step cap `cap` (None, feed-forward recovery, when `cap` is 0)."""
    if cap < 0:
        raise ValueError(f"the refinement step cap must be 0 or more, got {cap}")
    if cap == 0:
        return None
    return RefineSettings(steps=cap, lr=REFINE_LR, anchor_weight=ANCHOR_WEIGHT, tolerance=tolerance)


RECOVERY_RULE = recovery_rule()


def describe(rule: RefineSettings | None) -> str:
    """The rule in words, as reports and benchmarks print it."""
    return "feed-forward (no refinement)" if rule is None else rule.describe()
