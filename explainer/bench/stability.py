"""`facexplain bench stability`: how still a pair's explanation holds when an arbitrary setting changes.

Pairs: held-out ORL people (s31-s40, never seen by a pack's transformer), GENUINE pairs of one person and
IMPOSTOR pairs of two. For each pair, pack and attack, explain_pair runs with seed 0 (the default), seed 1,
and a 3x stricter recovery rule (a third of the convergence tolerance and three times the step cap).
Reported, per pack and attack and over all:
  top-10 overlap  |top 10 of one ∩ top 10 of the other| / 10, rankings without the LBP cells, between
                  (a) seed 0 and seed 1, (b) the default and the stricter rule, (c) PGD and transfer
                  (seed 0); median and minimum over pairs. A pair where either side scored fewer than 10
                  named attributes is counted apart (its "top 10" would be everything it scored).
  significance kept   of the attributes significant at seed 0 (interval above 1), the fraction still
                  significant under (a) and (b), pooled over pairs (named attributes and all).
  seconds         per explanation at seed 0 (the first explanation of a pair with a pack is cold: its
                  probe and reference are recovered; later ones reuse those faces).
--one-draw measures the same for the pre-ensemble explanation (one counterfactual, every face refined
alone for 5 fixed steps, no jitter; its "stricter rule" is 15 steps): the before of the before/after.
"""
from __future__ import annotations

import os
import time

import numpy as np
from tqdm import tqdm

from explainer.assets import datasets
from explainer.counterfactual.attacks import ATTACKS as REGISTERED

GENUINE = (("s31", 1, 6), ("s33", 2, 7), ("s35", 3, 8), ("s37", 4, 9), ("s39", 5, 10), ("s40", 2, 8))
IMPOSTOR = (("s31", 1, "s32", 1), ("s34", 1, "s36", 1), ("s38", 2, "s40", 5), ("s33", 3, "s39", 3),
            ("s35", 4, "s37", 6), ("s32", 7, "s40", 9))
PACKS = ("dlib-dcgan", "mobilefacenet-dcgan")
ATTACKS = tuple(REGISTERED)  # every registered attack
STRICTER = 3  # the stricter rule: tolerance / 3, step cap x 3


def pairs(n: int | None = None) -> list[tuple[str, str, str]]:
    """Genuine and impostor pairs, alternating, so any prefix has both kinds."""
    root = datasets.assets.path("orl")
    genuine = [(str(root / s / f"{a}.pgm"), str(root / s / f"{b}.pgm"), "genuine") for s, a, b in GENUINE]
    impostor = [(str(root / s / f"{a}.pgm"), str(root / t / f"{b}.pgm"), "impostor") for s, a, t, b in IMPOSTOR]
    mixed = [p for both in zip(genuine, impostor) for p in both]
    return mixed[:n] if n else mixed


def named_top(explanation, n: int = 10) -> list[str]:
    """The first n named (non-LBP) attributes of the ranking that have an s_a."""
    return [a for a in explanation.scored if explanation.groups[a] != "lbp"][:n]


def overlap(a, b, n: int = 10) -> float | None:
    """|top n of a ∩ top n of b| / n; None when either scored fewer than n named attributes."""
    top_a, top_b = named_top(a, n), named_top(b, n)
    if len(top_a) < n or len(top_b) < n:
        return None
    return len(set(top_a) & set(top_b)) / n


def kept(a, b, named: bool) -> tuple[int, int]:
    """(attributes significant in a that are also significant in b, attributes significant in a)."""
    sig_a = {n for n in a.significant if not named or a.groups[n] != "lbp"}
    return len(sig_a & set(b.significant)), len(sig_a)


def summarise(values: list[float | None]) -> dict:
    usable = [v for v in values if v is not None]
    return {"median": float(np.median(usable)) if usable else None, "min": float(np.min(usable)) if usable else None,
            "pairs": len(usable), "pairs_with_fewer_than_10": len(values) - len(usable), "per_pair": values}


def fraction(counts: list[tuple[int, int]]) -> dict:
    hit, total = sum(c[0] for c in counts), sum(c[1] for c in counts)
    return {"kept": hit, "significant": total, "fraction": hit / total if total else None}


def run(packs=PACKS, n_pairs: int | None = None, attacks=ATTACKS, workers: int = 1, one_draw: bool = False,
        members: int | None = None) -> dict:
    """Every pack's records (one process per pack when workers > 1: each runs on one thread, so two packs
    on two cores take the time of one), then the summary table. one_draw: the pre-ensemble baseline
    (explain_pair's one_draw; its stricter rule is three times its fixed step count). members: another
    ensemble size than explain_pair's default, for every attack."""
    from explainer.core.console import print_table

    chosen = pairs(n_pairs)
    if workers > 1 and len(packs) > 1:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(min(workers, len(packs))) as pool:
            parts = pool.starmap(pack_records, [(pack, chosen, tuple(attacks), one_draw, members) for pack in packs])
    else:
        parts = [pack_records(pack, chosen, tuple(attacks), one_draw, members) for pack in packs]
    records = [r for part in parts for r in part]
    result = {"packs": list(packs), "attacks": list(attacks), "pairs": len(chosen), "cpu_count": os.cpu_count(),
              "workers": workers, "one_draw": one_draw, "members": members, "load_average": list(os.getloadavg()), "records": records,
              "summary": _summary(records, packs, attacks)}
    _print(result, print_table)
    return result


def pack_records(pack: str, chosen: list[tuple[str, str, str]], attacks: tuple[str, ...],
                 one_draw: bool = False, members: int | None = None) -> list[dict]:
    """One pack's explanations of every pair: seed 0, seed 1 and the stricter rule, per attack."""
    from explainer.jobs.explain import ONE_DRAW_STEPS, REFINE_CAP, TOLERANCE, explain_pair

    if one_draw:
        default = {"one_draw": True, "refine_steps": ONE_DRAW_STEPS}
        strict = {"one_draw": True, "refine_steps": ONE_DRAW_STEPS * STRICTER}
    else:
        default = {"members": members}
        strict = {"members": members, "refine_steps": REFINE_CAP * STRICTER, "tolerance": TOLERANCE / STRICTER}

    records = []
    explain_pair(*chosen[0][:2], pack=pack, members=1, jitters=1)  # warm-up: models load outside the timings
    for probe, reference, kind in tqdm(chosen, desc=f"bench stability {pack}", unit="pair", disable=None):
        runs = {}
        for attack in attacks:
            start = time.perf_counter()
            runs[attack, "seed0"] = explain_pair(probe, reference, pack=pack, attack=attack, seed=0, **default)
            seconds = time.perf_counter() - start
            runs[attack, "seed1"] = explain_pair(probe, reference, pack=pack, attack=attack, seed=1, **default)
            runs[attack, "strict"] = explain_pair(probe, reference, pack=pack, attack=attack, seed=0, **strict)
            base = runs[attack, "seed0"]
            records.append({
                "pack": pack, "attack": attack, "kind": kind, "seconds": seconds,
                "pair": f"{_short(probe)} vs {_short(reference)}",
                "seeds": overlap(base, runs[attack, "seed1"]), "rule": overlap(base, runs[attack, "strict"]),
                "kept_seeds_named": kept(base, runs[attack, "seed1"], True),
                "kept_seeds_all": kept(base, runs[attack, "seed1"], False),
                "kept_rule_named": kept(base, runs[attack, "strict"], True),
                "kept_rule_all": kept(base, runs[attack, "strict"], False),
                "flipped": base.stability.members_flipped, "members": base.stability.members,
                "member_agreement": base.stability.top10_agreement_between_members,
                "refine_steps_taken": base.stability.refine_steps_taken,
                "strict_steps_taken": runs[attack, "strict"].stability.refine_steps_taken,
                "top10": named_top(base)})
        if len(attacks) == 2:
            records.append({"pack": pack, "attack": "pgd-vs-transfer", "kind": kind,
                            "pair": f"{_short(probe)} vs {_short(reference)}",
                            "attacks": overlap(runs[attacks[0], "seed0"], runs[attacks[1], "seed0"]),
                            "transfer_flipped": runs[attacks[1], "seed0"].stability.members_flipped})
    return records


def _short(path: str) -> str:
    return f"{os.path.basename(os.path.dirname(path))}/{os.path.basename(path)}"


def _summary(records: list[dict], packs, attacks) -> dict:
    summary = {}
    groups = [(p, a) for p in packs for a in attacks] + [("all", a) for a in attacks]
    for pack, attack in groups:
        chosen = [r for r in records if r["attack"] == attack and pack in ("all", r["pack"])]
        summary[f"{pack}/{attack}"] = {
            "seeds": summarise([r["seeds"] for r in chosen]), "rule": summarise([r["rule"] for r in chosen]),
            "kept_seeds_named": fraction([r["kept_seeds_named"] for r in chosen]),
            "kept_seeds_all": fraction([r["kept_seeds_all"] for r in chosen]),
            "kept_rule_named": fraction([r["kept_rule_named"] for r in chosen]),
            "kept_rule_all": fraction([r["kept_rule_all"] for r in chosen]),
            "seconds_mean": float(np.mean([r["seconds"] for r in chosen])),
            "seconds_max": float(np.max([r["seconds"] for r in chosen])),
            "member_agreement_mean": _mean([r["member_agreement"] for r in chosen])}
    for pack in list(packs) + ["all"]:
        chosen = [r for r in records if r["attack"] == "pgd-vs-transfer" and pack in ("all", r["pack"])]
        if chosen:
            flipped = [r for r in chosen if r["transfer_flipped"] > 0]
            summary[f"{pack}/pgd-vs-transfer"] = {
                "attacks": summarise([r["attacks"] for r in chosen]),
                "attacks_where_transfer_flipped": summarise([r["attacks"] for r in flipped])}
    return summary


def _mean(values) -> float | None:
    usable = [v for v in values if v is not None]
    return float(np.mean(usable)) if usable else None


def _pair(s: dict) -> str:
    """median / minimum of an overlap; medians of an even count of pairs are halves of tenths (0.85)."""
    return " / ".join("n/a" if s[k] is None else f"{s[k]:.2f}" for k in ("median", "min"))


def _fraction(value) -> str:
    return "n/a (nothing significant)" if value is None else f"{value:.0%}"


def _print(result: dict, print_table) -> None:
    rows = []
    for key, s in result["summary"].items():
        if key.endswith("pgd-vs-transfer"):
            a, f = s["attacks"], s["attacks_where_transfer_flipped"]
            rows.append([key, "", "", "", "", f"{_pair(a)} ({_pair(f)} flipped)", "", ""])
            continue
        rows.append([key, _pair(s["seeds"]), _pair(s["rule"]), _fraction(s["kept_seeds_named"]["fraction"]),
                     _fraction(s["kept_rule_named"]["fraction"]), "", f"{s['seconds_mean']:.1f}",
                     f"{s['seconds_max']:.1f}"])
    print_table(["pack/attack", "seeds top-10 (median / min)", "rule top-10", "sig. kept (seeds)", "sig. kept (rule)",
                 "PGD vs transfer", "s/pair", "max s"], rows)
    print(f"{result['pairs']} pairs; load average {result['load_average'][0]:.1f} on {result['cpu_count']} cores")
