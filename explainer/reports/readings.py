"""Plain sentences about a pair explanation that the app, report.html and report.pdf all print."""
from __future__ import annotations

from explainer.counterfactual.attacks import ATTACKS


def no_flip_reading(expl) -> str:
    """What an explanation whose counterfactuals never flipped the decision can say: which attack, the largest
    budget it tried, how close it came, and what to try instead. There is no ranking to give (no flip, no
    ranking): a change that leaves the decision as it was explains nothing about it."""
    d, c, st = expl.decision, expl.counterfactual, expl.stability
    score = "distance" if d.euclidean else "cosine similarity"
    entry = ATTACKS.get(c.attack)
    attack = entry.label if entry is not None else c.attack
    largest = max((m.linf_eps_255 for m in c.members), default=c.linf_eps_255)
    text = (f"No counterfactual flipped the decision. The attack, {attack}, tried {st.members} seeded members "
            f"with budgets up to L∞ {largest:g}/255; the closest moved the {score} to the reference from "
            f"{d.similarity:.3f} to {c.similarity:.3f}, against the threshold {d.threshold:.3f}. Without a change "
            "that flips the decision there is nothing to explain it by, so no attribute is ranked and no s_a is "
            "given.")
    if c.attack != "pgd":
        text += f" The white-box attack, {ATTACKS['pgd'].label}, may find a flip: try it."
    return text
