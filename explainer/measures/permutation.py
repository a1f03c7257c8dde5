"""The identity-permutation null of a dependence measure: what a recovery that gives each person a
consistent but arbitrary face would score.

With several photos per person, I(a; â) is high for *any* recovery that is a consistent function of
identity: the photos of one person resemble each other, and so do the faces recovered from them. The
null hands every person's recovered faces to another person (their photos kept together) and
recomputes the measure; when each photo is a different person it is a plain shuffle. An attribute is
kept only when the real pairing beats that null.

    person_permutation(people, rng)      one person-consistent permutation of the samples
    permutation_test(statistic, ...)     null values, their mean and a sequential Monte Carlo p-value
    holm(p_values)                       Holm's step-down adjustment over a family of tests
    person_halves(people, rng)           half of the people, all their samples (the intervals' resampling)

p-values are sequential (Besag & Clifford 1991): every test draws at least `n_min` permutations (the
null's mean and spread come from those); a test whose statistic is still beaten fewer than
`exceedances` times goes on, doubling, up to `n_max`. A test beaten `exceedances` times already has
p >= 0.05 at n_min = 200, so stopping there changes no decision and saves most of the cost; only
attributes that may be kept pay for the permutations a Holm correction needs (p can reach
1 / (n_max + 1), which must lie below 0.05 / the number of attributes).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

N_MIN = 200
EXCEEDANCES = 10
ALPHA = 0.05


def person_codes(people, n: int) -> np.ndarray:
    """Integer person codes [n] from any labels [n] (strings, ints); None: every sample its own person."""
    if people is None:
        return np.arange(n)
    if len(people) != n:
        raise ValueError(f"{len(people)} person labels for {n} samples")
    _, codes = np.unique(np.asarray(people), return_inverse=True)
    return codes.reshape(-1)


def person_permutation(people: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices [N]: sample i is paired with the recovery of sample perm[i]. People are permuted among those
    with the same number of samples, photo j of one person (in the data's order) standing in for photo j of
    the other: each person's recoveries stay together and none is repeated. When every sample is a
    different person this is a plain shuffle."""
    people = np.asarray(people)
    perm = np.arange(len(people))
    members = {}
    for index, person in enumerate(people):
        members.setdefault(int(person), []).append(index)
    by_size: dict[int, list[list[int]]] = {}
    for person in sorted(members):
        by_size.setdefault(len(members[person]), []).append(members[person])
    for groups in by_size.values():
        if len(groups) < 2:
            continue  # a person whose photo count nobody shares stays paired with itself (see n_fixed)
        source = np.array(groups)  # [people, size]
        perm[source.reshape(-1)] = source[rng.permutation(len(groups))].reshape(-1)
    return perm


def fixed_people(people: np.ndarray) -> int:
    """People whose photo count no other person shares: the null cannot move them."""
    _, sizes = np.unique(np.asarray(people), return_counts=True)
    _, shared = np.unique(sizes, return_counts=True)
    return int((shared == 1).sum())


def person_halves(people: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices of the samples of a random half of the people (all of their samples), in the drawn order.
    With one sample per person (people = 0..N-1) this is rng.permutation(N)[:N // 2]."""
    people = np.asarray(people)
    order = np.argsort(people, kind="stable")
    _, starts = np.unique(people[order], return_index=True)
    bounds = np.append(starts, len(people))
    chosen = rng.permutation(len(starts))[:len(starts) // 2]
    return np.concatenate([order[bounds[c]:bounds[c + 1]] for c in chosen])


@dataclass(frozen=True)
class NullResult:
    values: np.ndarray  # the statistic under each permutation drawn
    p_value: float  # (exceedances + 1) / (permutations + 1)

    @property
    def mean(self) -> float:
        return float(self.values.mean())

    @property
    def high(self) -> float:
        """The null's 95th percentile: the value an arbitrary identity-consistent recovery reaches 1 time in 20."""
        return float(np.percentile(self.values, 95))


def permutation_test(statistic: Callable[[np.ndarray], np.ndarray], observed: float, people: np.ndarray,
                     seed, n_min: int = N_MIN, n_max: int = N_MIN, exceedances: int = EXCEEDANCES,
                     batch: int = 50) -> NullResult:
    """The null of `statistic` under person-consistent permutations. statistic(perms [P, N]) -> values [P]
    (batched: distance-based estimators reuse their matrices for a whole batch). Deterministic for a seed;
    tests with the same seed and people draw the same permutations, so attributes and packs meet the same
    null draws."""
    if n_max < n_min:
        raise ValueError(f"n_max ({n_max}) must be at least n_min ({n_min})")
    rng = np.random.default_rng(seed)
    values: list[np.ndarray] = []
    drawn, target = 0, n_min
    while True:
        while drawn < target:
            size = min(batch, target - drawn)
            perms = np.stack([person_permutation(people, rng) for _ in range(size)])
            values.append(np.asarray(statistic(perms), np.float64))
            drawn += size
        null = np.concatenate(values)
        beaten = int((null >= observed).sum())
        if beaten >= exceedances or drawn >= n_max:
            return NullResult(null, (beaten + 1) / (drawn + 1))
        target = min(2 * drawn, n_max)


def holm(p_values: dict[str, float]) -> dict[str, float]:
    """Holm-adjusted p-values (step-down, monotone, capped at 1): reject where adjusted < alpha."""
    names = sorted(p_values, key=lambda n: (p_values[n], n))
    m, running, adjusted = len(names), 0.0, {}
    for rank, name in enumerate(names):
        running = max(running, min(1.0, (m - rank) * p_values[name]))
        adjusted[name] = running
    return adjusted


def permutations_for(n_tests: int, alpha: float = ALPHA) -> int:
    """Permutations a test needs so that its smallest p-value, 1 / (n + 1), lies at half Holm's first
    threshold alpha / n_tests (at least N_MIN)."""
    return max(N_MIN, int(np.ceil(2 * n_tests / alpha)))
