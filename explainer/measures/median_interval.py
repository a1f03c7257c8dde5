"""A distribution-free confidence interval for the median of a few independent draws (order statistics).

With n independent draws from any distribution with median m, the number of draws below m is
Binomial(n, 1/2), so the interval [x_(k), x_(n+1-k)] between the k-th smallest and the k-th largest draw
covers m with probability at least 1 - 2 P(B <= k - 1), B ~ Binomial(n, 1/2) (exactly, for a continuous
distribution; at least, with ties). Nothing is assumed about the shape of the distribution, which a
percentile bootstrap of a median of 3 to 5 draws needs and does not get: its interval is close to the
draws' min-max, and it missed the median of simulated members 26 % of the time with 3 (`bench coverage`).

The level an interval reaches depends on n alone: [min, max] is a 75 % interval with 3 draws, 87.5 % with
4, 93.75 % with 5 and 96.9 % with 6; 95 % needs at least 6. With fewer, the interval is still returned,
with its own (lower) level, which is what a report must state.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import comb

import numpy as np


@dataclass(frozen=True)
class MedianInterval:
    low: float
    high: float
    confidence: float  # the interval's coverage of the median, from n alone (exact for continuous draws)
    rank: int  # k: the interval is [k-th smallest, k-th largest]
    n: int


def order_statistic_coverage(n: int, k: int) -> float:
    """Coverage of the median by [x_(k), x_(n+1-k)] with n independent continuous draws: P(k <= B <= n-k)."""
    if not 1 <= k <= (n + 1) // 2:
        raise ValueError(f"rank k must be between 1 and (n+1)//2, got k={k}, n={n}")
    below = sum(comb(n, j) for j in range(k)) / 2 ** n  # P(B <= k-1)
    return 1.0 - 2.0 * below


def members_needed(confidence: float) -> int:
    """The fewest draws whose [min, max] covers the median with at least this confidence."""
    n = 1
    while order_statistic_coverage(n, 1) < confidence:
        n += 1
    return n


def interval_rank(n: int, confidence: float = 0.95) -> int:
    """k of the narrowest [x_(k), x_(n+1-k)] that reaches `confidence` with n draws (1: [min, max], also when
    even that falls short)."""
    k = 1
    while k + 1 <= (n + 1) // 2 and order_statistic_coverage(n, k + 1) >= confidence:
        k += 1
    return k


def reachable_confidence(n: int, confidence: float = 0.95) -> float:
    """The level of the interval median_interval gives with n draws (below `confidence` when n is too few)."""
    return order_statistic_coverage(n, interval_rank(n, confidence))


def median_interval(values, confidence: float = 0.95) -> MedianInterval:
    """The narrowest [x_(k), x_(n+1-k)] reaching `confidence`; with too few values for it, [min, max] and its
    own lower confidence (compare `.confidence` with what was asked before calling anything significant)."""
    x = np.sort(np.asarray(values, dtype=np.float64).reshape(-1))
    n = len(x)
    if n == 0 or not np.isfinite(x).all():
        raise ValueError("a median interval needs at least one finite value")
    k = interval_rank(n, confidence)
    return MedianInterval(float(x[k - 1]), float(x[n - k]), order_statistic_coverage(n, k), k, n)


def confidence_label(confidence: float) -> str:
    """How a report names an interval's level: whole percent, rounded down ("96 %", "75 %")."""
    return f"{int(np.floor(confidence * 100 + 1e-9))} %"
