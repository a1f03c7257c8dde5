"""`facexplain bench coverage`: do the s_a intervals cover what they say, with the real member and jitter counts?

A simulation, for each attack's member count (explain_pair's MEMBERS) and its JITTERS: a probe and a
reference face with fixed jitter estimates (in explain_pair they are fixed: the same recovered faces read
at the same views), and members drawn independently from a known distribution of attribute changes, each
read at JITTERS views with estimator noise. The truth is the median of s_a over that distribution (Monte
Carlo, 400,000 members). Coverage: the share of simulated explanations whose interval contains it.

Scenarios: member changes lognormal (skewed), a two-component mixture (some members move the attribute,
most do not: the shape a real ensemble showed), and Student-t (heavy tails); each in 2-D.

Reported beside the interval explain_pair uses (measures.median_interval), the percentile bootstrap it
replaced (members and jitters resampled, 1000 replicates), kept here as the baseline.
"""
from __future__ import annotations

import numpy as np

from explainer.measures.ensemble import CONFIDENCE, _member_ratios, ensemble_significance, resolution

SCENARIOS = ("lognormal", "mixture", "student_t")
DIM = 2
NOISE_SD = 0.05  # estimator noise per view, against a probe-to-reference distance of 1
TRUTH_DRAWS = 400_000


def _member_changes(scenario: str, rng: np.random.Generator, n: int) -> np.ndarray:
    """[n, DIM] true attribute changes of n members (probe's value + change is the member face's)."""
    direction = np.array([0.6, 0.8])
    if scenario == "lognormal":
        return rng.lognormal(0.0, 0.6, (n, 1)) * direction + 0.2 * rng.standard_normal((n, DIM))
    if scenario == "mixture":
        moved = rng.random((n, 1)) < 0.3
        return np.where(moved, 1.8, 0.5) * direction + 0.15 * rng.standard_normal((n, DIM))
    if scenario == "student_t":
        return (1.0 + 0.4 * rng.standard_t(2, (n, 1))) * direction + 0.1 * rng.standard_t(2, (n, DIM))
    raise ValueError(f"unknown scenario {scenario!r}; expected one of {', '.join(SCENARIOS)}")


def _fixed_faces(jitters: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Probe and reference jitter estimates [J, DIM]: drawn once, as explain_pair's are fixed for a pair."""
    rng = np.random.default_rng(seed)
    probe = np.zeros(DIM) + NOISE_SD * rng.standard_normal((jitters, DIM))
    reference = np.array([1.0, 0.0]) + NOISE_SD * rng.standard_normal((jitters, DIM))
    return probe, reference


def _members(scenario: str, rng: np.random.Generator, n: int, jitters: int) -> np.ndarray:
    """[J, n, DIM] jitter estimates of n members' faces."""
    true = _member_changes(scenario, rng, n)
    return true[None] + NOISE_SD * rng.standard_normal((jitters, n, DIM))


def true_median(scenario: str, probe: np.ndarray, reference: np.ndarray, jitters: int, seed: int = 1) -> float:
    """The median of s_a over the members' distribution, for these probe and reference estimates."""
    members = _members(scenario, np.random.default_rng(seed), TRUTH_DRAWS, jitters)
    ratios, floored = _member_ratios(probe.mean(0), reference.mean(0), members.mean(0), floor=0.0)
    assert not floored
    return float(np.median(ratios))


def bootstrap_interval(probe: np.ndarray, reference: np.ndarray, members: np.ndarray, rng: np.random.Generator,
                       n_boot: int = 1000) -> tuple[float, float]:
    """The interval explain_pair used before: 95 % percentile bootstrap of the median, resampling members and
    each face's jitters."""
    floor = resolution(probe, reference, members, "continuous")
    jitters, count = members.shape[0], members.shape[1]
    pick = rng.integers(0, count, (n_boot, count))
    jp, jr, jm = (rng.integers(0, jitters, (n_boot, jitters)) for _ in range(3))
    boot_members = np.take_along_axis(members[jm].mean(1), pick[:, :, None], axis=1)
    boot, _ = _member_ratios(probe[jp].mean(1), reference[jr].mean(1), boot_members, floor)
    medians = np.median(boot, axis=1)
    low, high = np.quantile(medians, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
    return float(low), float(high)


def simulate(scenario: str, members: int, jitters: int, trials: int = 2000, seed: int = 0,
             baseline: bool = True) -> dict:
    """Coverage of the true median by explain_pair's interval (and by the old bootstrap when `baseline`)."""
    probe, reference = _fixed_faces(jitters, seed)
    truth = true_median(scenario, probe, reference, jitters)
    rng = np.random.default_rng(seed + 2)
    hits, old_hits, levels, floored = 0, 0, set(), 0
    for _ in range(trials):
        estimates = _members(scenario, rng, members, jitters)
        s = ensemble_significance(probe, reference, estimates)
        floored += s.flag == "floored"
        levels.add(s.confidence)
        hits += s.interval[0] <= truth <= s.interval[1]
        if baseline:
            low, high = bootstrap_interval(probe, reference, estimates, rng)
            old_hits += low <= truth <= high
    (level,) = levels
    result = {"scenario": scenario, "members": members, "jitters": jitters, "trials": trials, "true_median": truth,
              "stated_confidence": level, "coverage": hits / trials, "floored_trials": floored}
    if baseline:
        result["bootstrap_coverage"] = old_hits / trials
    return result


def run(trials: int = 2000, seed: int = 0, members: int | None = None) -> dict:
    """Every attack's member count (or `members` for all) x every scenario."""
    from explainer.core.console import print_table
    from explainer.jobs.explain import JITTERS, MEMBERS

    rows = [simulate(scenario, members or count, JITTERS, trials, seed) | {"attack": attack}
            for attack, count in MEMBERS.items() for scenario in SCENARIOS]
    print_table(["attack", "members", "jitters", "scenario", "stated", "coverage", "bootstrap (before)"],
                [[r["attack"], r["members"], r["jitters"], r["scenario"], r["stated_confidence"], r["coverage"],
                  r["bootstrap_coverage"]] for r in rows])
    return {"trials": trials, "seed": seed, "confidence_asked": CONFIDENCE, "results": rows}
