"""I(a; â) per attribute, with a bootstrap interval and a normalised value that compares across attributes.

Estimators by kind:
  categorical   plug-in with the Miller-Madow correction (explainer.measures.categorical)
  continuous    KSG k-NN, any dimension (explainer.measures.knn)
  mixed         a continuous, â categorical: Ross's k-NN estimator

Interval (fixed seed): a subsampling bootstrap over half-samples drawn without replacement. The
estimate is recomputed on B random halves of the data; the 2.5 and 97.5 percentiles of their deviation
from the half-sample mean are added to the full-sample estimate. With m = N/2 that deviation has the
estimator's sampling variance at N (finite-population correction), and, unlike resampling with
replacement, no point is duplicated: k-NN estimators read duplicates (distance 0) as near-infinite
information, and the plug-in estimator reads them as extra dependence. Centring removes the estimator's
bias difference between N/2 and N; the interval describes sampling spread, not the bias itself.

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

from explainer.measures.categorical import (as_labels, entropy_miller_madow, mutual_information_categorical)
from explainer.measures.knn import ksg_terms, mixed_terms

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

    def as_dict(self) -> dict:
        return asdict(self)


def linfoot(mi: float) -> float:
    """Linfoot's informational coefficient of correlation sqrt(1 - exp(-2 I)), I clipped at 0."""
    return float(np.sqrt(1.0 - np.exp(-2.0 * max(mi, 0.0))))


def _half_sample_interval(estimate, x, y, n_boot: int, confidence: float, rng: np.random.Generator
                          ) -> tuple[float, float]:
    """Interval from B half-samples without replacement: with m = N/2 the spread of the half-sample
    estimates about their mean matches the estimator's sampling spread at N (finite-population
    correction (1/m - 1/N) = 1/N), and unlike resampling with replacement it makes no duplicate points."""
    n = len(x)
    half = n // 2
    boot = np.array([estimate(x[idx], y[idx]) for idx in
                     (rng.permutation(n)[:half] for _ in range(n_boot))])
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(boot - boot.mean(), [tail, 100 - tail])
    return float(low), float(high)


def mutual_information(a: np.ndarray, a_hat: np.ndarray, kind: str, *, k: int = 3, n_boot: int = 200,
                       confidence: float = 0.95, seed: int = 0) -> MIEstimate:
    """I(a; â) in nats of paired samples a, â ([N] or [N, dim] each) of the given kind, deterministic for
    the same inputs and seed."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
    a, a_hat = np.asarray(a), np.asarray(a_hat)
    n = len(a)
    if len(a_hat) != n:
        raise ValueError(f"a and â need the same number of samples, got {n} and {len(a_hat)}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)

    if kind == "categorical":
        x, y = as_labels(a), as_labels(a_hat)
        value = mutual_information_categorical(x, y)
        low, high = _half_sample_interval(mutual_information_categorical, x, y, n_boot, confidence, rng)
        entropy = entropy_miller_madow(x)
        normalised = min(max(value, 0.0) / entropy, 1.0) if entropy > 0 else None
        return MIEstimate(value, value + low, value + high, normalised, n, "miller-madow", "I/H(a)", entropy)

    if kind == "continuous":
        def estimate(u, v):
            return float(ksg_terms(u, v, k=k, seed=seed).mean())
        x, y, estimator = a, a_hat, "ksg"
    else:
        def estimate(u, v):
            return float(mixed_terms(u, v, k=k, seed=seed).mean())
        x, y, estimator = a, as_labels(a_hat), "ross"
    value = estimate(x, y)
    low, high = _half_sample_interval(estimate, x, y, n_boot, confidence, rng)
    return MIEstimate(value, value + low, value + high, linfoot(value), n, estimator, "linfoot", None)
