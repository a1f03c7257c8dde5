"""I(a; â) per attribute, with a bootstrap interval and a normalised value that compares across attributes.

Estimators by kind:
  categorical   plug-in with the Miller-Madow correction (explainer.measures.categorical)
  continuous    KSG k-NN, any dimension (explainer.measures.knn)
  mixed         a continuous, â categorical: Ross's k-NN estimator

Interval (fixed seed): a subsampling bootstrap over half-samples of the *people* drawn without
replacement (all photos of a drawn person; with one photo per person, half of the photos). The
estimate is recomputed on B random halves; the 2.5 and 97.5 percentiles of their deviation from the
half-sample mean are added to the full-sample estimate. With half of the M people, that deviation has
the estimator's sampling variance at M people (finite-population correction); resampling photos instead
treats ten photos of one person as ten independent draws and gives intervals far too narrow. Unlike
resampling with replacement, no point is duplicated: k-NN estimators read duplicates (distance 0) as near-infinite
information, and the plug-in estimator reads them as extra dependence. Centring removes the estimator's
bias difference between N/2 and N; the interval describes sampling spread, not the bias itself.

Null (n_null > 0): the identity-permutation null of explainer.measures.permutation, with the estimate
recomputed for each person-consistent permutation of â; k-NN estimates reuse the distance matrices, so a
permutation costs a fraction of an estimate. `excess` = I − the null's mean, `p_value` its sequential
Monte Carlo p-value. Compare attributes by excess, not by I or normalised I: both rise with an
attribute's dimension and with how many photos each person has, the null removes that common part.

Normalised MI (so attributes of different kinds and dimensions compare on [0, 1]):
  categorical   max(I, 0) / H(a), H by Miller-Madow: the fraction of the attribute's entropy kept; 1 when
                â determines a.
  continuous, mixed
                Linfoot's informational coefficient of correlation r_I = sqrt(1 - exp(-2 max(I, 0))):
                differential entropies can be negative, so I / H(a) is meaningless; r_I is 0 for
                independence, tends to 1 as â determines a, and equals |ρ| for jointly Gaussian 1-D a, â.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from explainer.measures import permutation
from explainer.measures.categorical import (as_labels, entropy_miller_madow, mutual_information_categorical)
from explainer.measures.knn import (BRUTE_FORCE_MAX, ksg_terms, ksg_terms_from_distances, max_norm_distances,
                                    mixed_terms, standardise)

KINDS = ("categorical", "continuous", "mixed")


@dataclass(frozen=True)
class MIEstimate:
    value: float  # I(a; â) in nats
    ci_low: float
    ci_high: float
    normalised: float | None  # see the module docstring; None when H(a) = 0 (a constant attribute)
    n: int  # samples used
    estimator: str  # "miller-madow", "ksg", "ross"
    normalisation: str  # "I/H(a)" or "linfoot"
    entropy: float | None  # H(a) in nats for categorical a (Miller-Madow), else None
    n_people: int | None = None  # distinct people among the n samples
    null_mean: float | None = None  # identity-permutation null (None when no null was drawn)
    null_high: float | None = None  # its 95th percentile
    excess: float | None = None  # value - null_mean
    p_value: float | None = None  # permutation p-value, before any multiple-testing correction
    n_null: int | None = None  # permutations drawn

    def as_dict(self) -> dict:
        return asdict(self)


def linfoot(mi: float) -> float:
    """Linfoot's informational coefficient of correlation sqrt(1 - exp(-2 I)), I clipped at 0."""
    return float(np.sqrt(1.0 - np.exp(-2.0 * max(mi, 0.0))))


def _blur(values: np.ndarray, resolution, rng: np.random.Generator) -> np.ndarray:
    values = np.asarray(values, np.float64)
    scale = np.broadcast_to(np.asarray(resolution, np.float64), values.shape[1:] if values.ndim > 1 else ())
    return values + scale * rng.standard_normal(values.shape)


def _half_sample_interval(estimate_on, people: np.ndarray, n_boot: int, confidence: float,
                          rng: np.random.Generator) -> tuple[float, float]:
    """Interval from B half-samples of the people without replacement: with half of the M people the
    spread of the half-sample estimates about their mean matches the estimator's sampling spread at M
    (finite-population correction (1/m - 1/M) = 1/M), and unlike resampling with replacement it makes no
    duplicate points. estimate_on(indices) -> the estimate on those samples."""
    boot = np.array([estimate_on(permutation.person_halves(people, rng)) for _ in range(n_boot)])
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(boot - boot.mean(), [tail, 100 - tail])
    return float(low), float(high)


class _Estimator:
    """One estimate of I(x; y) and its variants: on a subset of the samples (the interval's half-samples)
    and with y permuted (the null). Up to knn.BRUTE_FORCE_MAX samples, KSG works from the full sample's
    standardised distance matrices, computed once: a subset or a permutation only indexes them."""

    def __init__(self, kind: str, x: np.ndarray, y: np.ndarray, k: int, seed: int):
        self.kind, self.x, self.y, self.k, self.seed = kind, x, y, k, seed
        self.matrices = None
        if kind == "continuous" and len(x) <= BRUTE_FORCE_MAX:
            rng = np.random.default_rng(seed)  # the same standardising and jitter as ksg_terms(x, y, k, seed)
            self.matrices = (max_norm_distances(standardise(x, rng)), max_norm_distances(standardise(y, rng)))

    def _terms(self, u, v) -> float:
        if self.kind == "categorical":
            return mutual_information_categorical(u, v)
        terms = ksg_terms if self.kind == "continuous" else mixed_terms
        return float(terms(u, v, k=self.k, seed=self.seed).mean())

    def on(self, idx: np.ndarray | None = None) -> float:
        if self.matrices is None:
            return self._terms(self.x, self.y) if idx is None else self._terms(self.x[idx], self.y[idx])
        d_x, d_y = self.matrices
        if idx is not None:
            d_x, d_y = d_x[np.ix_(idx, idx)], d_y[np.ix_(idx, idx)]
        return float(ksg_terms_from_distances(d_x, d_y, self.k).mean())

    def permuted(self, perms: np.ndarray) -> np.ndarray:
        """The estimate with y permuted by each row of perms [P, N]."""
        if self.matrices is None:
            return np.array([self._terms(self.x, self.y[p]) for p in perms])
        d_x, d_y = self.matrices
        return ksg_terms_from_distances(d_x[None], d_y[perms[:, :, None], perms[:, None, :]], self.k).mean(-1)


def mutual_information(a: np.ndarray, a_hat: np.ndarray, kind: str, *, k: int = 3, n_boot: int = 200,
                       confidence: float = 0.95, seed: int = 0, resolution=None, people=None, n_null: int = 0,
                       n_null_max: int | None = None) -> MIEstimate:
    """I(a; â) in nats of paired samples a, â ([N] or [N, dim] each) of the given kind, deterministic for
    the same inputs and seed.

    resolution (continuous a only; scalar or [dim]): the precision the attribute is measured to, in its
    own units. Gaussian noise of that standard deviation (fixed seed) is added to a and â (continuous
    columns) before estimating. k-NN estimators are scale-free, so without it differences far below
    anything visible or measurable (say, 1 % of an attribute's natural spread) count as much as large ones.

    people ([N] labels, default: every sample a different person): who each sample shows; the interval
    resamples people and the null permutes them. n_null: permutations of the null (0: none), going on up
    to n_null_max for a value the first n_null rarely reach (explainer.measures.permutation).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
    a, a_hat = np.asarray(a), np.asarray(a_hat)
    n = len(a)
    if len(a_hat) != n:
        raise ValueError(f"a and â need the same number of samples, got {n} and {len(a_hat)}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    people = permutation.person_codes(people, n)
    rng = np.random.default_rng(seed)
    if resolution is not None and kind != "categorical":
        noise = np.random.default_rng([seed, 1])
        a = _blur(a, resolution, noise)
        if kind == "continuous":
            a_hat = _blur(a_hat, resolution, noise)

    if kind == "categorical":
        x, y = as_labels(a), as_labels(a_hat)
    else:
        x, y = a, (a_hat if kind == "continuous" else as_labels(a_hat))
    estimator = _Estimator(kind, x, y, k, seed)
    value = estimator.on()
    low, high = _half_sample_interval(estimator.on, people, n_boot, confidence, rng)
    if kind == "categorical":
        entropy = entropy_miller_madow(x)
        normalised = min(max(value, 0.0) / entropy, 1.0) if entropy > 0 else None
        name, normalisation = "miller-madow", "I/H(a)"
    else:
        name, normalisation, entropy = ("ksg" if kind == "continuous" else "ross"), "linfoot", None
        normalised = linfoot(value)
    null = {}
    if n_null > 0:
        result = permutation.permutation_test(estimator.permuted, value, people, [seed, 2],
                                              n_min=n_null, n_max=max(n_null, n_null_max or n_null),
                                              batch=max(1, min(50, 2_000_000 // (n * n))))
        null = {"null_mean": result.mean, "null_high": result.high, "excess": value - result.mean,
                "p_value": result.p_value, "n_null": len(result.values)}
    return MIEstimate(value, value + low, value + high, normalised, n, name, normalisation, entropy,
                      n_people=int(people.max()) + 1 if n else 0, **null)
