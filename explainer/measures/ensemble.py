"""s_a as an ensemble estimate: one value per counterfactual member, a median and an interval for it.

For one attribute, with â the mean of its estimates over test-time jitters of a recovered face:

    s_a^m = ||â_p − â_adv^m|| / ||â_p − â_ref||     for each counterfactual member m

Point estimate: the median over members. Interval: the distribution-free order-statistic interval of
that median (measures.median_interval), at the confidence the member count reaches (96.9 % with 6
members, 75 % with 3). What it covers: the median of s_a over the counterfactual's random draws (each
member's seed), for this pair's recovered probe and reference faces read at the fixed jitter views. The
members are independent draws of that, so the coverage is exact whatever their distribution. The jitter
views are fixed transforms, not random draws, so the estimator's own error is not in the interval; it
enters through the resolution below (a difference within the jitter noise is no difference).
`bench coverage` checks the coverage by simulation with the real member and jitter counts.

Categorical attributes (class probabilities) are compared as presence (see `presence`).
Resolution: a distance below `floor` (the estimator's jitter noise, or the kind's minimum) is no
difference. When the probe-to-reference distance is below it the ratio is not formed: if the members
did not move the attribute beyond it either, s_a is undefined (nothing resolvable moved); otherwise
s_a^m = distance / floor, flagged "floored", a lower bound of the true ratio. So an accessory nobody
wears (probabilities 0.01, 0.02, 0.03) cannot swing s_a, and no ratio of two noise levels is ever read.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explainer.measures.median_interval import median_interval

CONFIDENCE = 0.95  # asked of every interval; "significant" only from an interval that reaches it
INTERVAL_METHOD = "order statistics of the members' s_a (distribution-free interval of the median)"
# Smallest difference that counts, by kind: class probabilities (Euclidean over the probability vector)
# closer than 5 points are the same; continuous attributes rely on their jitter noise (and a tiny
# absolute floor for estimators that are exactly repeatable).
MIN_FLOOR = {"categorical": 0.05, "continuous": 1e-9}
NOISE_MULTIPLE = 2.0  # a difference must exceed this many standard deviations of jitter noise
# Class probabilities are read as presence: below ABSENT a class is not there, above PRESENT it is, linear
# between. A glasses classifier saying 0.10 on one face and 0.02 on another says "no glasses" twice; as raw
# probabilities that 0.08 made glasses "significant" on pairs where nobody wears any.
ABSENT, PRESENT = 0.2, 0.8


def presence(probabilities: np.ndarray) -> np.ndarray:
    """Class probabilities (any shape) mapped to presence in [0, 1]: 0 up to ABSENT, 1 from PRESENT."""
    return np.clip((np.asarray(probabilities, np.float64) - ABSENT) / (PRESENT - ABSENT), 0.0, 1.0)


@dataclass(frozen=True)
class EnsembleSignificance:
    value: float | None  # median of the members' s_a; None when undefined
    interval: tuple[float, float] | None  # order-statistic interval of the median
    flag: str | None  # None, "floored" (the reference did not move it beyond the resolution) or "undefined"
    members: tuple[float, ...]  # each member's s_a (empty when undefined)
    floor: float  # the resolution used
    confidence: float | None = None  # the interval's level (from the member count); None when undefined

    @property
    def significant(self) -> bool:
        """The whole interval lies above 1, and the interval reaches CONFIDENCE."""
        return (self.interval is not None and self.interval[0] > 1.0 and self.confidence is not None
                and self.confidence >= CONFIDENCE)

    @property
    def resolved(self) -> bool:
        """The interval lies wholly above or wholly below 1."""
        return self.interval is not None and (self.interval[0] > 1.0 or self.interval[1] < 1.0)


def _means(values: np.ndarray) -> np.ndarray:
    """[J, ..., dim] jitter estimates -> [..., dim] their mean."""
    return values.mean(axis=0)


def resolution(probe: np.ndarray, reference: np.ndarray, members: np.ndarray, kind: str) -> float:
    """The smallest distance between two jitter-mean estimates that is not noise: NOISE_MULTIPLE x the
    standard deviation of such a difference under the pooled within-face jitter variance, at least the
    kind's floor. probe, reference: [J, dim]; members: [J, M, dim]."""
    jitters = probe.shape[0]
    floor = MIN_FLOOR.get(kind, MIN_FLOOR["continuous"])
    if jitters < 2:
        return floor
    faces = np.concatenate([probe[:, None], reference[:, None], members], axis=1)  # [J, F, dim]
    variance = faces.var(axis=0, ddof=1).mean(axis=0)  # pooled over faces, per dim
    difference_sd = float(np.sqrt(2.0 * variance.sum() / jitters))
    return max(floor, NOISE_MULTIPLE * difference_sd)


def _member_ratios(p: np.ndarray, r: np.ndarray, adv: np.ndarray, floor: float) -> tuple[np.ndarray, np.ndarray]:
    """s_a per member from jitter means p, r [..., dim] and adv [..., M, dim]: (ratios [..., M], NaN where
    undefined; floored [...], True where the probe-to-reference distance is below the floor)."""
    numerators = np.linalg.norm(adv - p[..., None, :], axis=-1)
    denominators = np.linalg.norm(p - r, axis=-1)
    floored = denominators < floor
    ratios = numerators / np.where(floored, floor, denominators)[..., None]
    undefined = floored & (np.median(numerators, axis=-1) < floor)
    return np.where(undefined[..., None], np.nan, ratios), floored


def ensemble_significance(probe: np.ndarray, reference: np.ndarray, members: np.ndarray,
                          kind: str = "continuous") -> EnsembleSignificance:
    """s_a of one attribute over an ensemble. probe, reference: jitter estimates [J, dim]; members: [J, M, dim]
    (J jitters of each member's recovered face). All finite (invalid estimates are the caller's to flag).
    Categorical estimates (class probabilities) are compared as `presence`. Deterministic (no resampling)."""
    probe, reference, members = (np.asarray(v, np.float64) for v in (probe, reference, members))
    if kind == "categorical":
        probe, reference, members = presence(probe), presence(reference), presence(members)
    assert probe.ndim == 2 and reference.shape == probe.shape, (probe.shape, reference.shape)
    assert members.ndim == 3 and members.shape[0] == probe.shape[0] and members.shape[2] == probe.shape[1], members.shape
    if not (np.isfinite(probe).all() and np.isfinite(reference).all() and np.isfinite(members).all()):
        raise ValueError("attribute values contain NaN or infinity; mark such estimates invalid instead")
    floor = resolution(probe, reference, members, kind)
    ratios, floored = _member_ratios(probe.mean(0), reference.mean(0), members.mean(0), floor)
    if not np.isfinite(ratios).all():
        return EnsembleSignificance(None, None, "undefined", (), floor)
    interval = median_interval(ratios, CONFIDENCE)
    return EnsembleSignificance(float(np.median(ratios)), (interval.low, interval.high),
                                "floored" if bool(floored) else None, tuple(float(v) for v in ratios), floor,
                                interval.confidence)
