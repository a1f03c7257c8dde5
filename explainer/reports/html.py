"""Self-contained HTML reports: plotly.js inlined from the installed plotly package (reports must open
offline, so never a CDN), images as inline PNG data, figure ids fixed so the same result writes the
same file."""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np
from PIL import Image

from explainer.evidence.fiswg import fiswg_component
from explainer.reports import figures
from explainer.reports.readings import no_flip_reading
from explainer.reports.summary import summary_sentences

# In pairs to compare: each photo beside the face recovered from its embedding (same frame), then the
# probe beside its counterfactual.
IMAGE_CAPTIONS = {
    "probe_decoder_frame": "probe photo (in the recovered faces' frame)",
    "recovered_probe": "recovered from the probe's embedding",
    "reference_decoder_frame": "reference photo (same frame)",
    "recovered_reference": "recovered from the reference's embedding",
    "probe_aligned": "probe (recognizer's aligned crop)",
    "counterfactual": "counterfactual probe",
    "perturbation_amplified": "perturbation, amplified",
    "recovered_counterfactual": "recovered probe moved by T(z_cf) − T(z_probe)",
    "reference_aligned": "reference (aligned crop)",
}


def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def _png_data(image: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure_html(figure, div_id: str) -> str:
    # Full width and responsive: the figures' own layouts keep their text inside from a phone to a desktop.
    return figure.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, default_width="100%",
                          config={"displaylogo": False, "responsive": True})


def _page(title: str, body: str) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}</title><script type=\"text/javascript\">{_plotly_js()}</script>"
            "<style>body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}"
            "figure{display:inline-block;margin:.4em;text-align:center}"
            "figure img{width:160px;height:160px;image-rendering:pixelated;border:1px solid #ccc}"
            ".summary{font-size:115%;line-height:1.5;background:#f4f6fa;padding:.6em 1em;border-left:4px solid #1f4e9c}"
            "table{border-collapse:collapse;display:block;overflow-x:auto;max-width:100%}td,th{border:1px solid #ddd;padding:2px 6px;font-size:90%}"
            "</style></head><body>\n" + body + "\n</body></html>\n")


def _table(rows: list[list], header: list[str]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "–" if value is None else str(value)


def write_html(expl, path) -> Path:
    """The pair explanation as one HTML file: decision, images, s_a bars, LBP heat map, notes, provenance."""
    d, c, st = expl.decision, expl.counterfactual, expl.stability
    decision = "match" if d.match else "no match"
    kind = "distance, lower = more alike" if d.euclidean else "cosine, higher = more alike"
    case = [["case", expl.case]] if getattr(expl, "case", None) else []
    summary = _table(case + [
        ["decision", f"{decision} ({d.recognizer}: {d.similarity:.4f}, {kind}; threshold {d.threshold:.4f})"],
        ["counterfactual ensemble", f"{st.members_flipped} of {st.members} members "
                                    f"flipped the decision; recovery: {st.refine_rule}"],
        ["counterfactual shown", f"{c.attack}: {'flipped' if c.flipped else 'NOT flipped'} at L∞ "
                           f"{c.linf_255}/255 measured (L2 {c.l2:.3g}); new score {c.similarity:.4f}"
                           + c.recovered_score_text()
                           + ("" if c.transferred is None else
                              f"; transferred from {c.surrogate}: {'yes' if c.transferred else 'no'}")],
        ["significant (95 % interval above 1)", (", ".join(n for n in expl.significant if expl.groups[n] != "lbp") or (
            "none" if expl.interval_reaches_confidence else f"none can be: {st.members_flipped} members give a "
                                                            f"{expl.interval_label} interval, too few for 95 %"))
         if c.flipped else "nothing is ranked: no counterfactual flipped the decision"],
        ["not resolved (interval spans 1)", ", ".join(n for n in expl.unresolved if expl.groups[n] != "lbp") or "none"],
    ], ["", ""])
    pictures = "".join(f"<figure><img src=\"{_png_data(expl.images[name])}\" alt=\"{name}\">"
                       f"<figcaption>{html.escape(caption)}</figcaption></figure>"
                       for name, caption in IMAGE_CAPTIONS.items() if name in expl.images)
    top = _table([[n, fiswg_component(n), expl.groups[n], expl.significance.get(n)]
                  + list(expl.significance_interval.get(n, [None, None])) + [expl.significance_flags.get(n, "")]
                  for n in expl.top(10)],
                 ["attribute", "FISWG component", "group", "s_a (median)", f"{expl.interval_label} low",
                  f"{expl.interval_label} high", "flag"])
    if c.flipped:
        significance = (f"<h2>Attribute significance</h2>{_figure_html(figures.significance_figure(expl), 'significance')}"
                        f"<h3>Top 10</h3>{top}")
        texture = f"<h2>Texture (LBP) cells</h2>{_figure_html(figures.lbp_heatmap_figure(expl), 'lbp')}"
    else:  # no flip, no ranking
        significance, texture = f"<h2>Attribute significance</h2><p><b>{html.escape(no_flip_reading(expl))}</b></p>", ""
    in_short = "".join(f"<p>{_bold(sentence)}</p>" for sentence in summary_sentences(expl))
    body = (f"<h1>Why {html.escape(d.recognizer)} said “{decision}”</h1><div class=\"summary\">{in_short}</div>"
            f"<h2>Details</h2>{summary}<h2>Faces</h2>{pictures}"
            f"{significance}{_evidence_section(expl)}{texture}{_notes_and_provenance(expl.notes, expl.provenance)}")
    return _write_page(path, "facexplain: pair explanation", body)


def _bold(sentence: str) -> str:
    """A summary sentence (Markdown **bold** only) as escaped HTML."""
    parts = html.escape(sentence).split("**")
    return "".join(f"<b>{part}</b>" if k % 2 else part for k, part in enumerate(parts))


def _evidence_section(expl) -> str:
    """Likelihood ratio, quality flags of both photos, calibration summary and its Tippett / ECE plots."""
    from explainer.evidence.likelihood_ratio import STANDING, CalibrationMissing, calibration_words, decision_and_lr
    from explainer.reports.evidence_figures import ece_figure, tippett_figure

    d, evidence = expl.decision, getattr(expl, "evidence", {}) or {}
    if d.log10_lr is None and not d.warnings and not evidence:  # no calibration was consulted
        return ""
    parts = ["<h2>Strength of evidence</h2>"]
    if d.log10_lr is not None:
        parts.append(f"<p><b>Likelihood ratio: log10 LR = {d.log10_lr:+.2f}</b>: {html.escape(d.verbal)} "
                     f"(verbal scale: ENFSI 2015).</p>")
        parting = decision_and_lr(d.match, d.log10_lr, d.fmr)
        parts += [f"<p>{html.escape(parting)}</p>"] if parting else []
        parts.append(f"<p><i>{html.escape(STANDING)}</i></p>")
    parts += [f"<p>Warning: {html.escape(w)}</p>" for w in d.warnings]
    quality = evidence.get("quality")
    if quality:
        names = [n for n in quality["probe"] if n not in ("image_px",)]
        parts.append(_table([[n, quality["probe"].get(n), quality["reference"].get(n)] for n in names],
                            ["quality flag", "probe", "reference"]))
    calibration = evidence.get("calibration", {})
    if calibration.get("available"):
        parts.append(f"<p>{html.escape(calibration_words(calibration))}</p>")
        parts.append(_table([[k, calibration.get(k)] for k in (
            "method", "lir_version", "n_genuine", "n_genuine_before_cap", "n_impostor", "n_people",
            "n_genuine_effective", "n_impostor_effective", "held_out_scored", "cllr", "cllr_min", "correct_sign",
            "log10_lr_bounds", "lr_one_at_score", "data", "validation", "command")], ["calibration", ""]))
        try:
            parts.append(_figure_html(tippett_figure(d.recognizer, d.log10_lr), "tippett")
                         + _figure_html(ece_figure(d.recognizer), "ece"))
        except CalibrationMissing:
            pass
    return "".join(parts)


def _notes_and_provenance(notes: list[str], provenance: dict) -> str:
    from explainer.reports.canonical import dumps

    items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return f"<h2>Notes</h2><ul>{items}</ul><h2>Provenance</h2><pre>{html.escape(dumps(provenance))}</pre>"


def _write_page(path, title: str, body: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_page(title, body), encoding="utf-8")
    return path


def _mi_cells(entry: dict | None) -> list:
    if entry is None:
        return [None] * 7
    reading = None if entry.get("p_holm") is None else ("kept" if entry.get("kept") else "not distinguishable from chance")
    return [entry["value"], entry["ci_low"], entry["ci_high"], entry.get("null_mean"), entry.get("excess"),
            entry.get("p_holm"), reading]


def _mi_table(report) -> str:
    rows = []
    for name in report.ranking:
        probe = report.probe.get(name) if report.probe else None
        rows.append([name, report.groups[name]] + _mi_cells(report.mi.get(name))
                    + ([None if probe is None else probe["value"], None if probe is None else probe.get("excess")]
                       if report.probe else []))
    return _table(rows, ["attribute", "group", "I (nats)", "95% low", "95% high", "null mean", "excess", "p (Holm)",
                         "reading"] + (["I probe", "probe excess"] if report.probe else []))


def write_model_html(report, path) -> Path:
    """One model's report: MI bars with intervals and the table."""
    body = (f"<h1>What {html.escape(report.pack)} keeps ({html.escape(report.data)}, {report.n_faces} faces)</h1>"
            f"{_figure_html(figures.mi_figure(report), 'mi')}{_figure_html(figures.mi_figure(report, include_lbp=True), 'mi_lbp')}"
            f"{_mi_table(report)}{_notes_and_provenance(report.notes, report.provenance)}")
    return _write_page(path, f"facexplain: {report.pack}", body)


def write_comparison_html(comparison, path) -> Path:
    """Two or more models: the comparison bars, then each model's MI bars and table."""
    parts = [f"<h1>Comparison on {html.escape(comparison.data)}: {html.escape(', '.join(comparison.packs))}</h1>",
             _figure_html(figures.comparison_figure(comparison), "comparison")]
    for k, pack in enumerate(comparison.packs):
        report = comparison.reports[pack]
        parts.append(f"<h2>{html.escape(pack)}</h2>{_figure_html(figures.mi_figure(report), f'mi_{k}')}{_mi_table(report)}")
    return _write_page(path, "facexplain: model comparison", "".join(parts))
