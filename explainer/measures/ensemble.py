"""s_a as an ensemble estimate: one value per counterfactual member, a median and a bootstrap interval.

For one attribute, with â the mean of its estimates over test-time jitters of a recovered face:

    s_a^m = ||â_p − â_adv^m|| / ||â_p − â_ref||     for each counterfactual member m

Point estimate: the median over members. Interval: 95 % percentile bootstrap of that median, each
replicate resampling the members and, for every face, its jitter estimates (so the interval carries
both the counterfactual's randomness and the estimator's own noise).

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

CONFIDENCE = 0.95
N_BOOT = 1000
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
    interval: tuple[float, float] | None  # 95 % bootstrap interval of the median
    flag: str | None  # None, "floored" (the reference did not move it beyond the resolution) or "undefined"
    members: tuple[float, ...]  # each member's s_a (empty when undefined)
    floor: float  # the resolution used

    @property
    def significant(self) -> bool:
        """The whole interval lies above 1."""
        return self.interval is not None and self.interval[0] > 1.0

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


def ensemble_significance(probe: np.ndarray, reference: np.ndarray, members: np.ndarray, kind: str = "continuous",
                          n_boot: int = N_BOOT, seed: int = 0) -> EnsembleSignificance:
    """s_a of one attribute over an ensemble. probe, reference: jitter estimates [J, dim]; members: [J, M, dim]
    (J jitters of each member's recovered face). All finite (invalid estimates are the caller's to flag).
    Categorical estimates (class probabilities) are compared as `presence`."""
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
    jitters, count = members.shape[0], members.shape[1]
    rng = np.random.default_rng(seed)
    # Replicates, vectorised: resample members, and each face's jitters, n_boot times.
    pick = rng.integers(0, count, (n_boot, count))
    jp, jr, jm = (rng.integers(0, jitters, (n_boot, jitters)) for _ in range(3))
    boot_members = np.take_along_axis(members[jm].mean(1), pick[:, :, None], axis=1)  # [n_boot, M, dim]
    boot, _ = _member_ratios(probe[jp].mean(1), reference[jr].mean(1), boot_members, floor)
    medians = np.where(np.isfinite(boot).all(1), np.median(np.nan_to_num(boot), axis=1), 0.0)  # nothing moved: 0
    low, high = np.quantile(medians, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
    return EnsembleSignificance(float(np.median(ratios)), (float(low), float(high)),
                                "floored" if bool(floored) else None, tuple(float(v) for v in ratios), floor)
