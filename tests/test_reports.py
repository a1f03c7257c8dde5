"""Report layer: figures, canonical JSON and offline HTML, on a hand-made explanation and model report
(the end-to-end pipeline is tested in test_pipeline.py)."""
from __future__ import annotations

import json
import math
import re

import numpy as np
import plotly.graph_objects as go
import pytest

from explainer.jobs.pipeline import ModelComparison, ModelReport, PairExplanation
from explainer.jobs.results import CounterfactualOutcome, Decision, Stability
from explainer.reports import (
    comparison_figure,
    lbp_heatmap_figure,
    mi_figure,
    significance_figure,
    write_comparison_html,
    write_html,
)
from explainer.attributes.names import PHRASES, is_paper, label, lbp_cell, phrase
from explainer.reports.canonical import dumps
from explainer.reports.figures import SHOWN_BARS, lbp_grid
from explainer.reports.summary import decision_sentence, reliance_sentence, stability_sentence, summary_sentences


def _explanation() -> PairExplanation:
    groups = {"shape": "structure", "hair_color": "texture", "glasses": "accessory"}
    groups.update({f"lbp_r{r}_c{c}": "lbp" for r in range(7) for c in range(7)})
    significance = {name: 0.1 * (k + 1) for k, name in enumerate(groups)}
    significance["glasses"] = 9.0  # a lower bound: the reference did not move it beyond the resolution
    significance["lbp_r0_c0"] = None
    # intervals: glasses wholly above 1 (significant), lbp_r6_c6 straddling 1 (not resolved), the rest below 1
    intervals = {name: [0.5 * value, 0.9] for name, value in significance.items() if value is not None and value < 1}
    intervals["glasses"] = [3.0, 12.0]
    intervals["lbp_r6_c6"] = [0.8, 6.5]
    intervals["lbp_r5_c6"] = [1.5, 6.0]
    rng = np.random.default_rng(0)
    images = {name: rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for name in
              ("probe_aligned", "reference_aligned", "counterfactual", "perturbation_amplified", "recovered_probe",
               "recovered_reference", "recovered_counterfactual", "recovered_probe_attribute_crop")}
    return PairExplanation(
        decision=Decision(match=True, similarity=0.3, threshold=0.513, metric="euclidean", fmr=1e-3,
                          threshold_source="test", recognizer="dlib-resnet"),
        counterfactual=CounterfactualOutcome(attack="pgd", flipped=True, linf_eps=1 / 255, linf=1 / 255, l2=0.7,
                                             similarity=0.52,
                                             recovered_to_reference={"probe": 0.41, "counterfactual": 0.47}),
        significance=significance, groups=groups, images=images, notes=["a note"], provenance={"seed": 0},
        significance_flags={"glasses": "floored", "lbp_r0_c0": "undefined"}, significance_interval=intervals,
        stability=Stability(members=6, members_flipped=6, jitters=2, refine_rule="test", refine_steps_taken={},
                            top10_agreement_between_members=None, significant_members_agree={}),
        seconds={"total": 1.0}, interval_confidence=0.96875)


def test_ranking_by_the_median_and_significance_by_the_interval():
    expl = _explanation()
    assert expl.ranking[0] == "glasses" and expl.ranking[-1] == "lbp_r0_c0"
    values = [expl.significance[n] for n in expl.ranking[:-1]]
    assert values == sorted(values, reverse=True)
    # significant: intervals wholly above 1, by their lower bound, although lbp_r6_c6 has the larger median
    assert expl.significant == ["glasses", "lbp_r5_c6"]
    assert expl.unresolved == ["lbp_r6_c6"]
    assert "lbp_r0_c0" not in expl.scored


def test_too_few_members_for_a_95_interval_call_nothing_significant(tmp_path):
    # 3 members: their [min, max] is a 75 % interval of the median; it is labelled so, and nothing is significant
    from dataclasses import replace

    from explainer.app.wording import decision_markdown

    expl = _explanation()
    expl.interval_confidence = 0.75
    expl.stability = replace(expl.stability, members=3, members_flipped=3, significant_members_agree={"glasses": 3})
    assert expl.significant == [] and expl.interval_label == "75 %" and expl.unresolved == ["lbp_r6_c6"]
    assert "none can be: 3 members give a 75 % interval, too few for 95 %" in write_html(expl, tmp_path / "r.html").read_text()
    text = decision_markdown(expl)
    assert "**No attribute is called significant**: 3 members give the median of s_a an interval of 75 %" in text
    assert "Every member put these above 1: glasses." in text and "at most 1/255" in text


def test_json_is_canonical_and_has_no_timings():
    expl = _explanation()
    text = expl.to_json()
    assert text == expl.to_json()
    payload = json.loads(text)
    assert "seconds" not in payload and payload["significance"]["lbp_r0_c0"] is None
    assert payload["significance_flags"]["glasses"] == "floored"
    assert payload["significance_interval"]["glasses"] == [3.0, 12.0] and "lbp_r0_c0" not in payload["significance_interval"]
    assert payload["significant"] == ["glasses", "lbp_r5_c6"] and payload["unresolved"] == ["lbp_r6_c6"]
    assert payload["stability"]["members"] == 6 and payload["interval_confidence"] == 0.96875
    assert set(payload) >= {"decision", "counterfactual", "significance", "provenance", "groups", "images"}
    with pytest.raises(ValueError, match="non-finite"):
        dumps({"x": math.inf})
    assert dumps({"x": 0.1 + 0.2}) == dumps({"x": 0.3})  # rounded to 10 significant digits


def test_figures_show_what_they_claim():
    expl = _explanation()
    figure = significance_figure(expl)
    assert isinstance(figure, go.Figure)
    assert any(shape.x0 == 1.0 and shape.x1 == 1.0 for shape in figure.layout.shapes)  # the s_a = 1 line
    assert any(a.text == "s_a = 1" for a in figure.layout.annotations)  # labelled
    bars = [trace for trace in figure.data if trace.type == "bar"]
    assert all(trace.orientation == "h" for trace in bars)
    plotted = [row[0] for trace in bars for row in trace.customdata]  # identifiers ride along for the hover
    assert "glasses" in plotted and not any(n.startswith("lbp_") for n in plotted)
    # Readable names on the axis, never identifiers; significant first, then by s_a.
    order = list(figure.layout.yaxis.categoryarray)
    assert order == ["Whether glasses are worn", "Hair colour", "3-D shape of the face"]
    assert not any("_" in label for label in order)
    glasses = next(trace for trace in bars if "glasses" in [row[0] for row in trace.customdata])
    k = [row[0] for row in glasses.customdata].index("glasses")
    assert glasses.error_x.array[k] == pytest.approx(3.0) and glasses.error_x.arrayminus[k] == pytest.approx(6.0)
    assert glasses.name == "paper's nine ✱" and glasses.marker.line.width > 0  # significant: starred, outlined
    values = next(trace for trace in figure.data if trace.type == "scatter")
    assert values.text[0].endswith("✱ ≥9.00")  # a lower bound says so
    assert figure.layout.yaxis.range == (2.5, -0.5)  # all three in view: no "show all" needed
    assert not figure.layout.updatemenus
    grid = lbp_grid(expl)
    assert grid.shape == (7, 7) and np.isnan(grid[0, 0])
    assert grid[6, 6] == pytest.approx(expl.significance["lbp_r6_c6"])
    heat = lbp_heatmap_figure(expl)
    assert [type(t).__name__ for t in heat.data] == ["Image", "Heatmap"]
    labels = heat.data[1].text
    assert labels[6][6].endswith("?") and not labels[5][6].endswith("?") and labels[0][0] == "–"  # not resolved: "?"
    outlined = [(s.x0, s.y0) for s in heat.layout.shapes]
    cell = 64 / 7
    assert outlined == [pytest.approx((6 * cell - 0.5, 5 * cell - 0.5))]  # lbp_r5_c6, the significant cell
    assert "over the recovered probe" in heat.layout.title.text  # this explanation has no aligned photo crop
    expl.images["probe_attribute_crop"] = expl.images["probe_aligned"]
    assert "over the aligned probe photo" in lbp_heatmap_figure(expl).layout.title.text


def test_many_attributes_show_fifteen_bars_then_all():
    expl = _explanation()
    extra = [n for n in PHRASES if n not in expl.groups][:20]
    for k, name in enumerate(extra):
        expl.groups[name] = "custom"
        expl.significance[name] = 0.05 * k
        expl.significance_interval[name] = [0.0, 0.05 * k + 0.1]
    figure = significance_figure(expl)
    scored = len([n for n in expl.scored if expl.groups[n] != "lbp"])
    assert scored > SHOWN_BARS
    assert figure.layout.yaxis.range == (SHOWN_BARS - 0.5, -0.5)
    (menu,) = figure.layout.updatemenus
    top, everything = menu.buttons
    assert top.label == f"Top {SHOWN_BARS}" and everything.label == f"Show all {scored}"
    assert everything.args[0]["yaxis.range"] == [scored - 0.5, -0.5]
    assert everything.args[0]["height"] > top.args[0]["height"]
    # The paper's nine and the custom attributes are told apart by colour and legend.
    names = {trace.name for trace in figure.data if trace.type == "bar"}
    assert names == {"paper's nine ✱", "paper's nine", "custom"}


def test_every_registered_attribute_has_a_readable_name():
    from explainer.attributes.registry import CORE, FAMILIES

    everything = [e.name for family in FAMILIES.values() for e in family()]
    named = [n for n in everything if lbp_cell(n) is None]
    assert set(named) == set(PHRASES), set(named) ^ set(PHRASES)  # none missing, none stale
    labels = [label(n) for n in everything]
    assert len(set(labels)) == len(labels)  # chart categories must be unique
    assert all("_" not in text and not text[0].islower() for text in labels)
    assert phrase("eye_distance_to_face_width") == "the distance between the eyes"
    assert phrase("lbp_r3_c2") == "the texture at the eyes (left)"
    assert {n for n in everything if is_paper(n)} == set(CORE)


def test_summary_reads_aloud_in_three_sentences():
    from dataclasses import replace

    expl = _explanation()
    expl.decision = replace(expl.decision, log10_lr=2.5, verbal="…", lr_bounded=False)
    expl.stability = replace(expl.stability, top10_agreement_between_members=0.9)
    sentences = summary_sentences(expl)
    assert len(sentences) == 3
    decision, reliance, stability = sentences
    assert decision.startswith("dlib-resnet says **match**") and "0.513" in decision
    assert "moderately strong support for the same person" in decision
    assert "whether glasses are worn" in reliance and "the texture of 1 face region (at the mouth, right edge)" in reliance
    assert "glasses" not in reliance.replace("whether glasses are worn", "")  # no identifiers
    members = expl.stability.members
    assert stability.startswith(f"{members} of {members} seeded counterfactuals") and "90%" in stability
    assert stability.endswith("the explanation is stable.")
    # The record (report.json) reads the same as the explanation.
    assert summary_sentences(json.loads(expl.to_json())) == sentences
    # Weaker cases say so.
    expl.stability = replace(expl.stability, members_flipped=3, top10_agreement_between_members=0.5)
    assert "unstable" in stability_sentence(expl)
    expl.decision = replace(expl.decision, log10_lr=None)
    assert "not calibrated" in decision_sentence(expl)
    expl.significance_interval = {n: [0.1, 0.9] for n in expl.significance_interval}
    assert reliance_sentence(expl).startswith("No single attribute clearly carried the decision")
    expl.counterfactual = replace(expl.counterfactual, flipped=False)  # no flip, no ranking
    assert reliance_sentence(expl).startswith("No counterfactual flipped the decision")


def test_html_opens_offline_and_is_deterministic(tmp_path):
    expl = _explanation()
    first = write_html(expl, tmp_path / "a.html").read_text()
    second = write_html(expl, tmp_path / "b.html").read_text()
    assert first == second
    # No external script: (plotly.js's own text mentions CDN urls for map tiles we never draw)
    assert not re.search(r"<script[^>]*\bsrc=", first)
    assert "Plotly.newPlot" in first and len(first) > 1_000_000  # plotly.js itself is inlined
    assert first.count("data:image/png;base64,") >= 7  # the seven pictures (+ the heat map's face)
    # It opens with the summary, in the app's words.
    summary = first.index('<div class="summary">')
    assert summary < first.index("<h2>")
    assert "<b>match</b>" in first[summary:summary + 2000]


def _report(pack: str, scale: float) -> ModelReport:
    null = {"null_mean": 0.3, "null_high": 0.45, "n_null": 200}
    mi = {"shape": {"value": 0.8 * scale, "ci_low": 0.6 * scale, "ci_high": 1.0 * scale, "normalised": 0.8 * scale,
                    "n": 50, "estimator": "ksg", "normalisation": "linfoot", "entropy": None, **null,
                    "excess": 0.8 * scale - 0.3, "p_value": 0.001, "p_holm": 0.002, "kept": True},
          "glasses": {"value": 0.2 * scale, "ci_low": 0.1 * scale, "ci_high": 0.3 * scale, "normalised": 0.3 * scale,
                      "n": 50, "estimator": "miller-madow", "normalisation": "I/H(a)", "entropy": 0.6, **null,
                      "excess": 0.2 * scale - 0.3, "p_value": 0.6, "p_holm": 0.6, "kept": False},
          "age": {"value": 0.5, "ci_low": 0.3, "ci_high": 0.7, "normalised": 0.6, "n": 50, "estimator": "ksg",
                  "normalisation": "linfoot", "entropy": None, **null, "excess": 0.2, "p_value": 0.01,
                  "p_holm": 0.02 if pack == "B" else 0.2, "kept": pack == "B"},
          "hat": None}
    return ModelReport(pack=pack, data="orl", n_images=50, n_faces=50, mi=mi,
                       groups={"shape": "structure", "glasses": "accessory", "age": "structure", "hat": "accessory"},
                       kinds={"shape": "continuous", "glasses": "categorical", "age": "continuous",
                              "hat": "categorical"},
                       notes=[], provenance={})


def test_model_figures(tmp_path):
    a, b = _report("A", 1.0), _report("B", 0.5)
    # kept first (by excess), then not distinguishable from chance (by name), then no estimate
    assert a.kept == ["shape"] and a.not_distinguishable == ["age", "glasses"]
    assert a.ranking == ["shape", "age", "glasses", "hat"] and b.ranking == ["age", "shape", "glasses", "hat"]
    figure = mi_figure(a)
    assert list(figure.data[0].x) == ["3-D shape of the face", "Apparent age", "Whether glasses are worn"]  # readable
    assert list(figure.data[0].error_y.array) == pytest.approx([0.2, 0.2, 0.1])
    assert figure.data[0].marker.color[1] == "#c7c7c7"  # not kept: grey
    assert list(figure.data[1].y) == pytest.approx([0.3, 0.3, 0.3])  # the null's mean on each bar
    comparison = ModelComparison(["A", "B"], "orl", {"A": a, "B": b})
    bars = comparison_figure(comparison)
    assert [t.name for t in bars.data] == ["A", "B"]
    # only attributes some model keeps, plotted as excess over the null; faded where not kept
    assert list(bars.data[0].x) == ["3-D shape of the face", "Apparent age"]
    assert list(bars.data[0].y) == pytest.approx([0.5, 0.2]) and list(bars.data[1].y) == pytest.approx([0.1, 0.2])
    assert list(bars.data[0].marker.opacity) == [1.0, 0.3]
    assert comparison.table()[3]["A"] is None
    html = write_comparison_html(comparison, tmp_path / "c.html").read_text()
    assert not re.search(r"<script[^>]*\bsrc=", html) and html.count("Plotly.newPlot") == 3


def test_about_and_the_evidence_accordion_say_one_thing_about_the_lr():
    # The About tab and the accordion (and the PDF) carry the same statement of what the LR is and is not, and
    # a "No match" beside an LR above 1 says what each means.
    from dataclasses import replace

    from explainer.app.about import METHOD
    from explainer.app.evidence import evidence_markdown
    from explainer.evidence.likelihood_ratio import STANDING, verbal

    expl = _explanation()
    expl.decision = replace(expl.decision, match=False, similarity=0.53, log10_lr=0.1, verbal=verbal(0.1))
    text = evidence_markdown(expl)
    assert STANDING in METHOD and STANDING in text and "not evidence of identity" in STANDING
    assert "point different ways" in text and "no match at this threshold" in text
