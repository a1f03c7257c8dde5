"""Figures of a recognizer's LR calibration, from its held-out (people-held-out) LRs: Tippett and ECE plots.

Plotly for the app and the HTML report; `write_pngs` draws the same curves with matplotlib for the README
and the PDF (static images without a browser). Deterministic: no random ids, no timestamps.
"""
from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go

from explainer.evidence.likelihood_ratio import curves
from explainer.reports.figures import chart_title

COLOURS = {"genuine": "#1f77b4", "impostor": "#d62728", "lr": "#1f77b4", "pav": "#2ca02c", "reference": "#7f7f7f"}


def tippett_figure(recognizer: str, log10_lr: float | None = None) -> go.Figure:
    """Share of held-out genuine / impostor pairs with a log10 LR at least x; this pair's LR as a line."""
    data = curves(recognizer)
    tippett = data["tippett"]
    figure = go.Figure()
    for name, label in (("genuine", "same person (Hp true)"), ("impostor", "different people (Hd true)")):
        figure.add_trace(go.Scatter(x=tippett["log10_lr"], y=tippett[name], mode="lines", name=label,
                                    line={"color": COLOURS[name], "shape": "hv"}))
    figure.add_vline(x=0.0, line_dash="dot", line_color="black")
    if log10_lr is not None:
        figure.add_vline(x=log10_lr, line_color="black", annotation_text=f"this pair: {log10_lr:+.2f}",
                         annotation_position="top")
    figure.update_layout(title=chart_title(f"Tippett plot, {recognizer}", f"{data['method']}, people held out"),
                         xaxis_title="log10 LR", yaxis_title="proportion of pairs with log10 LR ≥ x",
                         template="plotly_white", height=420, yaxis_range=[0, 1.02])
    return figure


def ece_figure(recognizer: str) -> go.Figure:
    """Empirical cross-entropy against prior odds: the LRs, after PAV, and LR = 1 always (reference)."""
    data = curves(recognizer)
    ece = data["ece"]
    figure = go.Figure()
    for name, label, dash in (("lr", "LRs (held out)", "solid"), ("pav", "after PAV (Cllr_min)", "dash"),
                              ("reference", "LR = 1 always", "dot")):
        figure.add_trace(go.Scatter(x=ece["prior_log10_odds"], y=ece[name], mode="lines", name=label,
                                    line={"color": COLOURS[name], "dash": dash}))
    figure.update_layout(title=chart_title(f"ECE plot, {recognizer}", f"Cllr {data['cllr']:.3f}, Cllr_min {data['cllr_min']:.3f}"),
                         xaxis_title="prior log10 odds (same person)", yaxis_title="empirical cross-entropy (bits)",
                         template="plotly_white", height=420, yaxis_rangemode="tozero")
    return figure


def write_pngs(recognizer: str, out_dir, log10_lr: float | None = None) -> dict[str, Path]:
    """tippett_{recognizer}.png and ece_{recognizer}.png in out_dir (matplotlib, Agg, no metadata dates)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = curves(recognizer)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    tippett, ece = data["tippett"], data["ece"]
    figure, axis = plt.subplots(figsize=(5.2, 3.6), dpi=110)
    axis.step(tippett["log10_lr"], tippett["genuine"], where="post", color=COLOURS["genuine"], label="same person")
    axis.step(tippett["log10_lr"], tippett["impostor"], where="post", color=COLOURS["impostor"],
              label="different people")
    axis.axvline(0, color="black", linestyle=":", linewidth=0.8)
    if log10_lr is not None:
        axis.axvline(log10_lr, color="black", linewidth=1.2, label=f"this pair ({log10_lr:+.2f})")
    axis.set(xlabel="log10 LR", ylabel="proportion with log10 LR ≥ x", ylim=(0, 1.02),
             title=f"Tippett, {recognizer} ({data['method']}, held out)")
    written["tippett"] = _finish(plt, figure, axis, out / f"tippett_{recognizer}.png")

    figure, axis = plt.subplots(figsize=(5.2, 3.6), dpi=110)
    for name, label, style in (("lr", "LRs (held out)", "-"), ("pav", "after PAV", "--"), ("reference", "LR = 1", ":")):
        axis.plot(ece["prior_log10_odds"], ece[name], style, color=COLOURS[name], label=label)
    axis.set(xlabel="prior log10 odds", ylabel="empirical cross-entropy (bits)", ylim=(0, None),
             title=f"ECE, {recognizer}: Cllr {data['cllr']:.3f}, Cllr_min {data['cllr_min']:.3f}")
    written["ece"] = _finish(plt, figure, axis, out / f"ece_{recognizer}.png")
    return written


def _finish(plt, figure, axis, path):
    """Legend, grid, tight layout, then the PNG (no software stamp: the same data gives the same bytes)."""
    axis.legend(fontsize=8)
    axis.grid(True, linestyle=":")
    figure.tight_layout()
    figure.savefig(path, metadata={"Software": None})
    plt.close(figure)
    return path
