"""Significance of an attribute for one decision (the paper's s_a).

    s_a = ||â_p − â_adv|| / ||â_p − â_ref||

â_p, â_ref, â_adv: the attribute on the recovered faces of the probe, the reference and the minimal
counterfactual. The counterfactual is the smallest change that flips the decision; s_a > 1 says it moved
the attribute further than the whole probe-to-reference difference, so the attribute took part in the
flip. Distances: Euclidean for continuous attributes, the number of differing components for
categorical ones (class codes have no geometry).

When the denominator is (numerically) zero the ratio is never formed: `value` is inf with flag
"infinite" when the numerator is not zero (probe and reference agree but the counterfactual moved the
attribute), and None with flag "undefined" when both are zero (nothing moved at all).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ATOL = 1e-9  # below this a distance counts as zero (attribute values are O(1) or larger)
RTOL = 1e-9  # ... or below this fraction of the attribute's own magnitude


@dataclass(frozen=True)
class Significance:
    value: float | None  # s_a; inf (flag "infinite") or None (flag "undefined") when the denominator is ~0
    numerator: float  # ||â_p − â_adv||
    denominator: float  # ||â_p − â_ref||
    flag: str | None  # None, "infinite" or "undefined"

    @property
    def significant(self) -> bool:
        """s_a > 1 (an infinite s_a counts; an undefined one does not)."""
        return self.value is not None and self.value > 1.0


def _distance(u: np.ndarray, v: np.ndarray, kind: str) -> float:
    if kind == "categorical":
        return float(np.count_nonzero(u != v))
    if kind in ("continuous", "mixed"):
        return float(np.linalg.norm(u - v))
    raise ValueError(f"unknown kind {kind!r}; expected categorical or continuous")


def significance(a_probe, a_ref, a_adv, kind: str = "continuous") -> Significance:
    """s_a of one attribute from its values ([dim] or scalar) on the three recovered faces."""
    p, r, adv = (np.atleast_1d(np.asarray(v, np.float64)).reshape(-1) for v in (a_probe, a_ref, a_adv))
    if not p.shape == r.shape == adv.shape:
        raise ValueError(f"attribute values differ in shape: {p.shape}, {r.shape}, {adv.shape}")
    if not (np.isfinite(p).all() and np.isfinite(r).all() and np.isfinite(adv).all()):
        raise ValueError("attribute values contain NaN or infinity; mark such estimates invalid instead")
    numerator, denominator = _distance(p, adv, kind), _distance(p, r, kind)
    zero = ATOL + RTOL * max(float(np.abs(p).max(initial=0)), float(np.abs(r).max(initial=0)))
    if denominator <= zero:
        if numerator <= zero:
            return Significance(None, numerator, denominator, "undefined")
        return Significance(float("inf"), numerator, denominator, "infinite")
    return Significance(numerator / denominator, numerator, denominator, None)
