"""Plotly figures of explanations and model reports. Deterministic: no random ids, no timestamps."""
from __future__ import annotations

import re

import numpy as np
import plotly.graph_objects as go

GROUP_COLOURS = {"structure": "#1f77b4", "texture": "#ff7f0e", "accessory": "#2ca02c", "custom": "#9467bd",
                 "lbp": "#8c564b"}
PACK_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")
LBP_CELL = re.compile(r"^lbp_r(\d+)_c(\d+)$")
GRID = 7


def _label(expl, name: str) -> str:
    """The bar's text: the median, with "≥" where the probe-to-reference distance was below the resolution
    (the value is then a lower bound)."""
    prefix = "≥" if expl.significance_flags.get(name) == "floored" else ""
    return f"{prefix}{expl.significance[name]:.2f}"


def significance_figure(expl, include_lbp: bool = False) -> go.Figure:
    """s_a per attribute (the median over the counterfactual members) with its 95 % interval as error bars,
    one bar colour per group, in ranking order; the dashed line is s_a = 1 (above it, the counterfactual
    moved the attribute more than the whole probe-to-reference difference). Significant: the whole
    interval above the line."""
    names = [n for n in expl.ranking if (include_lbp or expl.groups[n] != "lbp") and expl.significance.get(n) is not None]
    figure = go.Figure()
    for group, colour in GROUP_COLOURS.items():
        members = [n for n in names if expl.groups[n] == group]
        if not members:
            continue
        values = [expl.significance[n] for n in members]
        intervals = [expl.significance_interval.get(n, [v, v]) for n, v in zip(members, values)]
        figure.add_trace(go.Bar(
            x=members, y=values, name=group, marker_color=colour, text=[_label(expl, n) for n in members],
            textposition="outside", cliponaxis=False,
            error_y={"type": "data", "symmetric": False, "array": [hi - v for (_, hi), v in zip(intervals, values)],
                     "arrayminus": [v - lo for (lo, _), v in zip(intervals, values)], "color": "#444", "thickness": 1.2},
            customdata=[[lo, hi] for lo, hi in intervals],
            hovertemplate=f"%{{x}}: s_a %{{y:.2f}}, {expl.interval_label} interval [%{{customdata[0]:.2f}}, "
                          "%{customdata[1]:.2f}]<extra></extra>"))
    figure.add_hline(y=1.0, line_dash="dash", line_color="black", annotation_text="s_a = 1",
                     annotation_position="top left")
    figure.update_layout(title="Attribute significance s_a for this decision (median over counterfactual members, "
                               f"{expl.interval_label} interval)", xaxis_title="attribute",
                         yaxis_title="s_a = ||â_p − â_adv|| / ||â_p − â_ref||", barmode="group",
                         xaxis={"categoryorder": "array", "categoryarray": names}, template="plotly_white",
                         legend_title="group", height=480)
    return figure


def lbp_grid(expl) -> np.ndarray:
    """7x7 s_a of the LBP cells (NaN where undefined or invalid)."""
    grid = np.full((GRID, GRID), np.nan)
    for name, group in expl.groups.items():
        match = LBP_CELL.match(name)
        if group != "lbp" or not match:
            continue
        if expl.significance.get(name) is not None:
            grid[int(match.group(1)), int(match.group(2))] = expl.significance[name]
    return grid


def _cell_text(expl, name: str) -> str:
    """A cell's label: its s_a, "?" appended where its interval straddles 1 (not resolved), "–" without one."""
    value = expl.significance.get(name)
    if value is None:
        return "–"
    interval = expl.significance_interval.get(name)
    unresolved = interval is not None and interval[0] <= 1.0 <= interval[1]
    return _label(expl, name) + ("?" if unresolved else "")


def lbp_heatmap_figure(expl) -> go.Figure:
    """The LBP-cell s_a as a 7x7 heat map over the recovered probe face (ATTRIBUTE_CROP frame); cells whose
    interval straddles 1 (not resolved) carry a "?"."""
    grid = lbp_grid(expl)
    finite = grid[np.isfinite(grid)]
    top = float(max(finite.max(initial=1.0), 1.0))
    shown = grid
    text = [["–"] * GRID for _ in range(GRID)]
    for name, group in expl.groups.items():
        match = LBP_CELL.match(name)
        if group == "lbp" and match:
            text[int(match.group(1))][int(match.group(2))] = _cell_text(expl, name)
    face = expl.images.get("recovered_probe_attribute_crop")
    figure = go.Figure()
    size = face.shape[0] if face is not None else GRID
    if face is not None:
        figure.add_trace(go.Image(z=face, opacity=1.0, hoverinfo="skip"))
    cell = size / GRID
    centres = [(k + 0.5) * cell - 0.5 for k in range(GRID)]
    figure.add_trace(go.Heatmap(z=shown, x=centres, y=centres, text=text, texttemplate="%{text}", opacity=0.55,
                                colorscale="Reds", zmin=0, zmax=top, colorbar={"title": "s_a"},
                                hovertemplate="row %{y:.0f} col %{x:.0f}: s_a %{text}<extra></extra>"))
    figure.update_yaxes(autorange="reversed", visible=False, scaleanchor="x")
    figure.update_xaxes(visible=False)
    figure.update_layout(title="LBP texture s_a per face cell (7x7; ? = interval spans 1, not resolved)",
                         template="plotly_white", height=480, width=520)
    return figure


def _mi_bars(report, name_filter=None):
    names = [n for n in report.ranking if report.mi.get(n) is not None and (name_filter is None or name_filter(n))]
    values = [report.mi[n]["value"] for n in names]
    upper = [report.mi[n]["ci_high"] - report.mi[n]["value"] for n in names]
    lower = [report.mi[n]["value"] - report.mi[n]["ci_low"] for n in names]
    return names, values, upper, lower


def _verdict(entry: dict) -> str:
    if entry.get("p_holm") is None:
        return "no null drawn"
    return (f"kept, Holm p {entry['p_holm']:.3g}" if entry.get("kept")
            else f"not distinguishable from chance, Holm p {entry['p_holm']:.3g}")


def mi_figure(report, include_lbp: bool = False) -> go.Figure:
    """I(a; â) in nats per attribute with its 95 % interval, in ranking order (kept attributes by excess
    over the identity-permutation null, then the rest); the null's mean as a black dash on each bar. Kept
    attributes in their group's colour, the others grey."""
    keep = None if include_lbp else (lambda n: report.groups[n] != "lbp")
    names, values, upper, lower = _mi_bars(report, keep)
    entries = [report.mi[n] for n in names]
    colours = [GROUP_COLOURS.get(report.groups[n], "#7f7f7f") if e.get("kept") else "#c7c7c7"
               for n, e in zip(names, entries)]
    hover = [[e["normalised"] if e["normalised"] is not None else float("nan"),
              e.get("null_mean", float("nan")), _verdict(e)] for e in entries]
    figure = go.Figure(go.Bar(x=names, y=values, marker_color=colours, name="I(a; â)",
                              error_y={"type": "data", "array": upper, "arrayminus": lower, "visible": True},
                              customdata=hover,
                              hovertemplate="%{x}: I = %{y:.3f} nats, null %{customdata[1]:.3f}, "
                                            "%{customdata[2]}<extra></extra>"))
    if any(e.get("null_mean") is not None for e in entries):
        figure.add_trace(go.Scatter(x=names, y=[e.get("null_mean") for e in entries], mode="markers",
                                    name="identity-permutation null (mean)",
                                    marker={"symbol": "line-ew-open", "size": 18, "color": "black"}))
    figure.update_layout(title=f"What {report.pack} keeps: I(a; â) on {report.data} ({report.n_faces} faces; "
                               f"{len(report.kept)} attributes kept, grey: not distinguishable from chance)",
                         xaxis_title="attribute (kept ones by excess over the null, then the rest)",
                         yaxis_title="I(a; â), nats", template="plotly_white", height=480)
    return figure


def comparison_figure(comparison, include_lbp: bool = False) -> go.Figure:
    """Each model's excess I(a; â) over its identity-permutation null, per attribute, side by side, with
    the interval shifted by the null's mean. Only attributes some model keeps are drawn, in the first
    model's ranking; a model's bar is faded where it does not keep the attribute."""
    reports = [comparison.reports[p] for p in comparison.packs]
    order = [n for r in reports for n in r.ranking]
    kept = {n for r in reports for n in r.kept}
    names = list(dict.fromkeys(n for n in order if n in kept and (include_lbp or reports[0].groups[n] != "lbp")))
    figure = go.Figure()
    for k, (pack, report) in enumerate(zip(comparison.packs, reports)):
        ys, up, down, opacity = [], [], [], []
        for n in names:
            entry = report.mi.get(n)
            if entry is None or entry.get("excess") is None:
                ys.append(None), up.append(0), down.append(0), opacity.append(1.0)
                continue
            ys.append(entry["excess"])
            up.append(entry["ci_high"] - entry["value"])
            down.append(entry["value"] - entry["ci_low"])
            opacity.append(1.0 if entry.get("kept") else 0.3)
        figure.add_trace(go.Bar(x=names, y=ys, name=pack, marker_color=PACK_COLOURS[k % len(PACK_COLOURS)],
                                marker_opacity=opacity,
                                error_y={"type": "data", "array": up, "arrayminus": down, "visible": True}))
    figure.update_layout(title=f"Excess I(a; â) over the identity-permutation null on {comparison.data} "
                               "(attributes some model keeps; faded: that model does not)", barmode="group",
                         xaxis_title="attribute", yaxis_title="I(a; â) − null mean, nats",
                         template="plotly_white", height=480)
    return figure
