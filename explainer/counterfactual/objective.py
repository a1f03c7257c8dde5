"""What a counterfactual aims at, in a recognizer's own metric.

A recognizer compares embeddings by a distance (Euclidean: lower = closer) or a similarity (cosine:
higher = closer). The goal is stated once as "closeness" (higher = more alike in both cases): for a
match we push the probe's embedding away from the reference until the decision is "no match"; for a
non-match we pull it toward the reference until it is "match".
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from explainer.recognition.base import Recognizer

# A flip must clear the threshold by this fraction of it, so that last-bit differences (a PNG reloaded,
# another thread count) cannot undo it.
MARGIN = 0.01


def quantise(images: torch.Tensor) -> torch.Tensor:
    """Float images in [0, 1] rounded to the nearest of the 256 uint8 levels (what a PNG stores)."""
    return torch.round(images.clamp(0, 1) * 255) / 255


@dataclass(frozen=True)
class DecisionGoal:
    """Flip `recognizer`'s decision about (probe, reference): away from a match, or toward one."""

    higher_is_closer: bool
    threshold: float
    push_away: bool  # True: the pair matches now, the counterfactual must not
    margin: float = MARGIN

    @classmethod
    def for_pair(cls, recognizer: Recognizer, currently_matches: bool, margin: float = MARGIN) -> DecisionGoal:
        return cls(recognizer.metric.higher_is_closer, float(recognizer.threshold.value), currently_matches, margin)

    def closeness(self, score: torch.Tensor) -> torch.Tensor:
        """Higher = more alike, whatever the metric."""
        return score if self.higher_is_closer else -score

    def objective(self, score: torch.Tensor) -> torch.Tensor:
        """Per-sample quantity to maximise: minus closeness to push away, closeness to pull toward."""
        return -self.closeness(score) if self.push_away else self.closeness(score)

    def reached(self, score: torch.Tensor) -> torch.Tensor:
        """bool per sample: the decision is flipped, with the margin."""
        threshold = torch.as_tensor(self.threshold, dtype=score.dtype)
        gap = self.closeness(score) - self.closeness(threshold)  # > 0: on the "match" side
        need = self.margin * abs(self.threshold)
        return gap < -need if self.push_away else gap > need
