"""The counterfactual attacks explain_pair offers, by name: the one place an attack is added.

Every attack is called the same way, `entry.run(AttackInput) -> AttackRun`: the target and the pair as the
target sees it in, one counterfactual per member seed out, with the settings it ran with and notes for the
report. The app's and the CLI's choices, the benchmarks and explain_pair all read ATTACKS; an unknown name
is an UnknownName (a FacexplainError) listing the known ones.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from explainer.core.registry import Registry
from explainer.counterfactual import pgd, transfer
from explainer.counterfactual.result import Counterfactual
from explainer.faces.align import align, to_tensor
from explainer.faces.landmarks import Landmarks
from explainer.recognition.base import Recognizer


@dataclass(frozen=True)
class AttackInput:
    """What every attack is given. The reference photo and its landmarks are there for attacks that craft
    on other recognizers (each embeds the reference in its own crop)."""

    target: Recognizer
    probe_crop: np.ndarray  # uint8 RGB, the target's aligned crop of the probe
    probe_landmarks: Landmarks
    reference_photo: np.ndarray  # uint8 RGB
    reference_landmarks: Landmarks
    reference_embedding: torch.Tensor  # the target's embedding of the reference
    currently_matches: bool
    seeds: list[int | None]  # one counterfactual per seed; None: the unseeded baseline draw
    surrogate: str | None = None  # attacks that craft on another recognizer: which one (None: their default)


@dataclass(frozen=True)
class AttackRun:
    """One counterfactual per seed, the settings that depend on the input, notes for the report, and the
    recognizers (other than the target) whose gradients shaped the counterfactuals (for provenance)."""

    members: list[Counterfactual]
    parameters: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    crafted_on: list[Recognizer] = field(default_factory=list)


@dataclass(frozen=True)
class AttackEntry:
    label: str  # what the app shows
    members: int  # ensemble members per explanation by default (chosen by `facexplain bench stability`)
    run: Callable[[AttackInput], AttackRun]
    parameters: dict  # the attack's fixed settings, recorded in every report's parameters
    seedless: bool = False  # can draw one member without a seed (the one-draw baseline of bench stability)


def _run_pgd(given: AttackInput) -> AttackRun:
    members = pgd.pgd_counterfactuals(given.target, given.probe_crop, given.reference_embedding,
                                      currently_matches=given.currently_matches, seeds=given.seeds)
    start = "none" if given.seeds == [None] else "uniform within the first budget"
    return AttackRun(members, {"random_start": start})


def _run_transfer(given: AttackInput) -> AttackRun:
    from explainer.recognition.registry import load_recognizer

    target = given.target
    candidates = [load_recognizer(n) for n in ([given.surrogate] if given.surrogate else
                                               transfer.ensemble_for(target.name))]
    with torch.no_grad():
        probe = to_tensor(given.probe_crop)
        # A user's recognizer may be a built-in one's file under another name: crafting on it would be
        # white-box. A surrogate of the target's crop that embeds the probe as the target does is left out.
        z_probe = target(probe)
        surrogates = [s for s in candidates if s.crop != target.crop or s.embedding_dim != target.embedding_dim
                      or not torch.allclose(s(probe), z_probe, atol=1e-4)] if not given.surrogate else candidates
        references = [s(to_tensor(align(given.reference_photo, given.reference_landmarks, s.crop)))[0]
                      for s in surrogates]
    members = transfer.transfer_counterfactuals(target, surrogates, given.probe_crop, given.probe_landmarks,
                                                given.reference_embedding, references,
                                                currently_matches=given.currently_matches, seeds=given.seeds)
    names = [s.name for s in surrogates]
    transferred = sum(bool(r.transferred) for r in members)
    note = (f"transfer attack crafted on {', '.join(names)} with feature dropout, input diversity and momentum; "
            f"{target.name} was only asked for decisions; {transferred} of {len(members)} members transferred "
            "within the largest budget")
    return AttackRun(members, {"surrogates": names}, [note], surrogates)


ATTACKS: Registry[AttackEntry] = Registry("attack")
# 6 PGD members: the fewest whose [min, max] is a 95 % interval of the median s_a (96.9 %,
# explainer.measures.median_interval).
ATTACKS.register("pgd", AttackEntry(
    "PGD (white-box, on this model)", 6, _run_pgd, seedless=True,
    parameters={"schedule_255": list(pgd.DEFAULT_SCHEDULE), "steps_per_budget": pgd.STEPS_PER_BUDGET,
                "bisection_rounds": pgd.BISECTION_ROUNDS}))
# Fewer members than PGD: every transfer member costs full surrogate runs, and 6 would pass 15 s per pair.
# 3 members give a 75 % interval of the median, reported as such, with no attribute called significant.
ATTACKS.register("transfer", AttackEntry(
    "Transfer (crafted on another model)", 3, _run_transfer,
    parameters={"schedule_255": list(transfer.TRANSFER_SCHEDULE), "steps_per_budget": transfer.TRANSFER_STEPS,
                "dropout": transfer.DROPOUT, "momentum": transfer.MOMENTUM, "diversity": transfer.DIVERSITY,
                "shrink": transfer.SHRINK, "scale_rounds": transfer.SCALE_ROUNDS}))


def attack(name: str) -> AttackEntry:
    """The attack named `name`; UnknownName (a FacexplainError listing the known ones) for any other."""
    return ATTACKS[name]
