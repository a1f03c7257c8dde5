"""The explanation in three sentences an investigator can read aloud: what was decided and how strongly
the evidence supports it, what the counterfactual relied on (in words, not identifiers), and how stable
that is. The app shows them first, report.html and report.pdf open with them.

It reads an explanation (explainer.jobs.results.PairExplanation) or its canonical record (report.json
as a dict) alike, through `read`: the only place that knows whether a part is a dict or an object.
"""
from __future__ import annotations

from explainer.attributes.names import LBP_COLUMNS, LBP_ROWS, lbp_cell, phrase
from explainer.evidence.likelihood_ratio import VERBAL_BANDS

MOST_NAMED = 3  # attributes named in the sentence; the rest are in the chart and the tables
# Member agreement (mean overlap of the members' own top 10s) read as words. PGD ensembles on held-out
# pairs agree at 0.93 on average and transfer ones at 0.69 (README, `facexplain bench stability`).
STABLE, FAIRLY_STABLE = 0.8, 0.6


def read(source, name: str, default=None):
    """`source[name]` for a dict (report.json), `source.name` for an object (PairExplanation or a part)."""
    if isinstance(source, dict):
        return source.get(name, default)
    value = getattr(source, name, default)
    return default if value is None else value


def _listed(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _support(log10_lr: float) -> str:
    """The ENFSI words for an LR, short: "very strong support for the same person"."""
    strength = 10 ** abs(log10_lr)
    if strength < VERBAL_BANDS[0][0]:
        return "no support either way (LR close to 1)"
    words = next(w for top, w in VERBAL_BANDS if strength < top)
    return f"{words} for {'the same person' if log10_lr > 0 else 'two different people'}"


def decision_sentence(expl) -> str:
    """Decision, score against threshold, and the likelihood ratio's verbal equivalent, in one sentence."""
    d = read(expl, "decision")
    euclidean = read(d, "metric") == "euclidean"
    text = (f"{read(d, 'recognizer')} says **{'match' if read(d, 'match') else 'no match'}**: "
            f"{'distance' if euclidean else 'similarity'} {read(d, 'similarity'):.3f}, where it accepts "
            f"{'up to' if euclidean else 'from'} {read(d, 'threshold'):.3f}")
    log10_lr = read(d, "log10_lr")
    if log10_lr is None:
        return text + "; the strength of this evidence is not calibrated for this model."
    bound = ", the most extreme its calibration supports" if read(d, "lr_bounded") else ""
    return text + f"; its likelihood ratio (log10 LR {log10_lr:+.2f}{bound}) gives {_support(log10_lr)}."


def _named(expl, names: list[str]) -> list[str]:
    groups = read(expl, "groups", {})
    return [n for n in names if groups.get(n) != "lbp"]


def _cells(expl, names: list[str]) -> list[str]:
    groups = read(expl, "groups", {})
    return [n for n in names if groups.get(n) == "lbp" and lbp_cell(n) is not None]


def reliance_sentence(expl) -> str:
    """What the smallest decision-flipping change moved more than the whole probe-to-reference difference."""
    if not read(read(expl, "counterfactual", {}), "flipped", True):
        return ("No counterfactual flipped the decision, so nothing says what it relied on (the detail says how "
                "close the attack came).")
    significant = list(read(expl, "significant", []))
    named, cells = _named(expl, significant), _cells(expl, significant)
    parts = [phrase(n) for n in named[:MOST_NAMED]]
    if len(named) > MOST_NAMED:
        parts.append(f"{len(named) - MOST_NAMED} more measured attribute{'s' * (len(named) - MOST_NAMED > 1)}")
    if cells:
        row, column = lbp_cell(cells[0])
        where = f"at the {LBP_ROWS[row]}, {LBP_COLUMNS[column]}"
        parts.append(f"the texture of {len(cells)} face region{'s' * (len(cells) > 1)} "
                     f"({'most of all ' if len(cells) > 1 else ''}{where})")
    if parts:
        return ("To flip the decision, the smallest change the model needed moved " + _listed(parts)
                + " more than the whole difference between the two photos: this decision relied on "
                + ("them" if len(parts) > 1 else "it") + ".")
    scored = _named(expl, [n for n in read(expl, "ranking", []) if read(expl, "significance", {}).get(n) is not None])
    if not scored:
        return "No attribute could be measured on the recovered faces, so nothing says what the decision relied on."
    return ("No single attribute clearly carried the decision: the smallest change that flips it moved none of them "
            f"reliably more than the whole difference between the two photos (the most: {phrase(scored[0])}).")


def stability_sentence(expl) -> str:
    """How many seeded counterfactuals flipped the decision, and how much their rankings agree."""
    st = read(expl, "stability", {})
    members = read(st, "members", 1)
    flipped = read(st, "members_flipped", int(bool(read(read(expl, "counterfactual", {}), "flipped"))))
    if not flipped:
        return (f"None of the {members} counterfactuals flipped the decision within the largest change tried, "
                "so no attribute is ranked.")
    agreement = read(st, "top10_agreement_between_members")
    head = f"{flipped} of {members} seeded counterfactuals flipped the decision"
    if agreement is None:
        return head + "; too few attributes were measured to compare their rankings."
    verdict = ("the explanation is stable" if agreement >= STABLE and flipped == members else
               "the explanation is fairly stable" if agreement >= FAIRLY_STABLE else
               "the explanation is unstable: read the ranking with care")
    return head + f" and their top-10 attributes overlap by {agreement:.0%} on average: {verdict}."


def summary_sentences(expl) -> list[str]:
    """The three sentences, in Markdown (bold decision); `plain` strips the mark-up for PDF."""
    return [decision_sentence(expl), reliance_sentence(expl), stability_sentence(expl)]


def plain(sentence: str) -> str:
    return sentence.replace("**", "")


def summary_markdown(expl) -> str:
    return "### In short\n\n" + " ".join(summary_sentences(expl))
