"""Plotly figures of explanations and model reports. Deterministic: no random ids, no timestamps."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

from explainer.attributes.names import is_paper, label, lbp_cell
from explainer.measures.ensemble import CONFIDENCE
from explainer.measures.median_interval import confidence_label
from explainer.reports.summary import read

GROUP_COLOURS = {"structure": "#1f77b4", "texture": "#ff7f0e", "accessory": "#2ca02c", "custom": "#9467bd",
                 "lbp": "#8c564b"}
PACK_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")
GRID = 7
PAPER_COLOUR, CUSTOM_COLOUR = "#1f4e9c", "#e07b1a"  # the paper's nine / this project's attributes
# Light to dark through yellow and red: legible under 50 % opacity over a face, and s_a = 1 (a mid tone)
# stands out from the pale cells the counterfactual barely moved.
LBP_COLOURS = "YlOrRd"
SHOWN_BARS = 15  # bars in view before "show all"
WRAP = 24  # characters per line of a bar's label: fits a 360 px wide phone
LEGEND_GAP = 60  # px from the plot area's bottom to the legend: room for the x axis's ticks and title
TOOLBAR_PX = 30
BUTTONS_PX = 40  # room between a title and its plot for the "show all" buttons  # room above a title for the plot's toolbar (Plotly's mode bar), which would cover it


def _label(expl, name: str) -> str:
    """The bar's text: the median, with "≥" where the probe-to-reference distance was below the resolution
    (the value is then a lower bound)."""
    prefix = "≥" if read(expl, "significance_flags", {}).get(name) == "floored" else ""
    return f"{prefix}{read(expl, 'significance')[name]:.2f}"


def wrap(text: str, width: int = WRAP) -> str:
    """`text` broken into lines of at most `width` characters at spaces, joined by <br> (Plotly's line
    break): long attribute names then fit a phone-wide chart instead of being cut off."""
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "<br>".join(lines + [line])


@dataclass(frozen=True)
class Bar:
    """One attribute's bar in the s_a chart (the app's, report.html's and report.pdf's alike)."""
    name: str
    label: str
    value: float
    low: float
    high: float
    text: str  # the value as written on the bar ("≥" for a lower bound)
    significant: bool
    paper: bool  # one of the paper's nine


def interval_label(expl) -> str:
    """The level of the s_a intervals as writers name it ("95 %", or "75 %" with too few members), from an
    explanation or its report.json record."""
    if not isinstance(expl, dict):
        return expl.interval_label
    confidence = expl.get("interval_confidence")
    return confidence_label(CONFIDENCE if confidence is None or confidence >= CONFIDENCE else confidence)


def significance_bars(expl, include_lbp: bool = False) -> list[Bar]:
    """The bars of the s_a chart in order: significant attributes first (by their interval's lower bound),
    then the rest by s_a. Reads a PairExplanation or its report.json record alike."""
    groups, values = read(expl, "groups", {}), read(expl, "significance", {})
    intervals = read(expl, "significance_interval", {})
    keep = [n for n in read(expl, "ranking", []) if values.get(n) is not None and (include_lbp or groups[n] != "lbp")]
    significant = [n for n in read(expl, "significant", []) if n in keep]
    order = significant + [n for n in keep if n not in significant]
    bars = []
    for n in order:
        low, high = intervals.get(n, [values[n], values[n]])
        bars.append(Bar(n, label(n), values[n], low, high, _label(expl, n), n in significant, is_paper(n)))
    return bars


def significance_figure(expl, include_lbp: bool = False, shown: int = SHOWN_BARS) -> go.Figure:
    """s_a per attribute as horizontal bars (the median over the counterfactual members) with its interval
    as error bars. Significant attributes (the whole interval above 1) come first, solid and
    outlined and starred; the paper's nine are blue, the custom ones orange. The dashed line is s_a = 1:
    the counterfactual moved the attribute as much as the whole probe-to-reference difference. The first
    `shown` bars are in view; a "show all" button brings in the rest."""
    bars, level = significance_bars(expl, include_lbp), interval_label(expl)
    figure = go.Figure()
    for paper, significant in ((True, True), (False, True), (True, False), (False, False)):
        members = [b for b in bars if b.paper == paper and b.significant == significant]
        if not members:
            continue
        colour = PAPER_COLOUR if paper else CUSTOM_COLOUR
        name = ("paper's nine" if paper else "custom") + (" ✱" if significant else "")
        figure.add_trace(go.Bar(
            y=[wrap(b.label) for b in members], x=[b.value for b in members], orientation="h", name=name,
            marker={"color": colour, "opacity": 1.0 if significant else 0.45,
                    "line": {"color": "#111", "width": 2 if significant else 0}},
            error_x={"type": "data", "symmetric": False, "array": [b.high - b.value for b in members],
                     "arrayminus": [b.value - b.low for b in members], "color": "#444", "thickness": 1.2},
            customdata=[[b.name, b.low, b.high] for b in members],
            hovertemplate=f"%{{y}} (%{{customdata[0]}}): s_a %{{x:.2f}}, {level} interval "
                          "[%{customdata[1]:.2f}, %{customdata[2]:.2f}]<extra></extra>"))
    categories = [wrap(b.label) for b in bars]
    # The values, written just beyond each interval's end (on the bar they would collide with its error bar).
    figure.add_trace(go.Scatter(
        y=categories, x=[b.high for b in bars], mode="text", text=[("\u2002✱ " if b.significant else "\u2002") + b.text for b in bars],
        textposition="middle right", textfont={"size": 12}, cliponaxis=False, showlegend=False, hoverinfo="skip"))
    top = max([b.high for b in bars] + [1.0])
    height = _bars_height(min(shown, len(bars)))
    figure.add_vline(x=1.0, line_dash="dash", line_color="black", annotation_text="s_a = 1",
                     annotation_position="bottom right", annotation_font_size=12)
    figure.update_layout(
        title=chart_title("What the decision relied on", "s_a: how much the counterfactual moved an", "attribute ÷ the "
                     "probe-to-reference difference;", f"bars: {level} interval; ✱ significant (above 1)"),
        xaxis={"title": {"text": "s_a"}, "range": [0, top * 1.25], "automargin": True},
        yaxis={"categoryorder": "array", "categoryarray": categories, "automargin": True,
               "range": [min(shown, len(bars)) - 0.5, -0.5], "tickfont": {"size": 12}},
        barmode="overlay", template="plotly_white", height=height, autosize=True,
        font={"size": 13}, legend={"orientation": "h", "yanchor": "top", "y": -LEGEND_GAP / height, "x": 0,
                                   "font": {"size": 12}},
        margin={"l": 10, "r": 40, "t": 40, "b": 10})
    if len(bars) > shown:  # the rest behind a "show all" control (in the app and in report.html alike), in
        # the gap kept between the title and the plot (beside the title it would cover it on a phone)
        figure.layout.title.pad.b = BUTTONS_PX
        figure.update_layout(updatemenus=[{
            "type": "buttons", "direction": "right", "x": 0, "xanchor": "left", "y": 1, "yanchor": "bottom",
            "pad": {"b": 4}, "showactive": True, "font": {"size": 12},
            "buttons": [{"label": text, "method": "relayout",
                         "args": [{"yaxis.range": [n - 0.5, -0.5], "height": _bars_height(n),
                                   "legend.y": -LEGEND_GAP / _bars_height(n)}]}
                        for text, n in ((f"Top {shown}", shown), (f"Show all {len(bars)}", len(bars)))]}])
    return figure


def _bars_height(n: int) -> int:
    return 300 + 34 * max(n, 3)


def chart_title(title: str, *lines: str) -> dict:
    """A chart title with short subtitle lines (each short enough for a 360 px phone), above the plot and
    below the plot's toolbar: automargin makes the top margin as tall as the title and its pads need."""
    text = title + "".join(f"<br><sup>{line}</sup>" for line in lines)
    return {"text": text, "automargin": True, "x": 0, "xanchor": "left", "yref": "paper", "y": 1,
            "yanchor": "bottom", "pad": {"t": TOOLBAR_PX, "b": 12}}


def lbp_grid(expl) -> np.ndarray:
    """7x7 s_a of the LBP cells (NaN where undefined or invalid)."""
    grid = np.full((GRID, GRID), np.nan)
    values = read(expl, "significance", {})
    for name, group in read(expl, "groups", {}).items():
        cell = lbp_cell(name)
        if group == "lbp" and cell is not None and values.get(name) is not None:
            grid[cell] = values[name]
    return grid


def _cell_text(expl, name: str) -> str:
    """A cell's label: its s_a, "?" appended where its interval straddles 1 (not resolved), "–" without one."""
    value = read(expl, "significance", {}).get(name)
    if value is None:
        return "–"
    interval = read(expl, "significance_interval", {}).get(name)
    unresolved = interval is not None and interval[0] <= 1.0 <= interval[1]
    return _label(expl, name) + ("?" if unresolved else "")


def lbp_cells(expl) -> tuple[np.ndarray, list[list[str]], list[tuple[int, int]], float]:
    """What the LBP map shows (report.html's, report.pdf's and the app's alike): the 7x7 s_a grid, each
    cell's text, the significant cells, and the top of the colour scale (at least 2, so 1 sits mid-scale
    or lower)."""
    grid = lbp_grid(expl)
    text = [["–"] * GRID for _ in range(GRID)]
    for name, group in read(expl, "groups", {}).items():
        cell = lbp_cell(name)
        if group == "lbp" and cell is not None:
            text[cell[0]][cell[1]] = _cell_text(expl, name)
    significant = [lbp_cell(n) for n in read(expl, "significant", []) if lbp_cell(n) is not None]
    finite = grid[np.isfinite(grid)]
    return grid, text, significant, float(max(finite.max(initial=0.0), 2.0))


def lbp_face(images: dict) -> tuple[np.ndarray | None, str]:
    """The face the LBP map is drawn over, and what it is: the probe photo aligned to the attributes' crop
    (the cells' frame) where the explanation has it, else the recovered probe in the same frame."""
    if images.get("probe_attribute_crop") is not None:
        return images["probe_attribute_crop"], "over the aligned probe photo"
    return images.get("recovered_probe_attribute_crop"), "over the recovered probe"


def lbp_heatmap_figure(expl) -> go.Figure:
    """The LBP-cell s_a as a 7x7 heat map over the aligned face (ATTRIBUTE_CROP frame, the cells' own);
    significant cells are outlined, cells whose interval straddles 1 (not resolved) carry a "?"."""
    grid, text, significant, top = lbp_cells(expl)
    face, over = lbp_face(read(expl, "images", {}))
    figure = go.Figure()
    size = face.shape[0] if face is not None else GRID
    if face is not None:
        figure.add_trace(go.Image(z=face, opacity=1.0, hoverinfo="skip"))
    cell = size / GRID
    centres = [(k + 0.5) * cell - 0.5 for k in range(GRID)]
    figure.add_trace(go.Heatmap(z=grid, x=centres, y=centres, text=text, texttemplate="%{text}", opacity=0.5,
                                textfont={"size": 12}, colorscale=LBP_COLOURS, zmin=0, zmax=top,
                                colorbar={"title": {"text": "s_a", "side": "top"}, "thickness": 14, "len": 0.8,
                                          "tickvals": [0, 1, top], "ticktext": ["0", "1", f"{top:.1f}"]},
                                hovertemplate="row %{y:.0f} col %{x:.0f}: s_a %{text}<extra></extra>"))
    for row, column in significant:
        figure.add_shape(type="rect", x0=column * cell - 0.5, x1=(column + 1) * cell - 0.5, y0=row * cell - 0.5,
                         y1=(row + 1) * cell - 0.5, line={"color": "black", "width": 3})
    # Square cells: the y axis is tied to x (constrain="domain" would misplace the outlines in plotly.js).
    figure.update_yaxes(autorange="reversed", visible=False, scaleanchor="x")
    figure.update_xaxes(visible=False)
    # A fixed top margin, not automargin: plotly.js leaves image and heat-map layers where they were before
    # an automargin moved the plot (the outlines then sit a row off).
    title = {**chart_title("Texture s_a per face cell", f"{over};", "outlined: significant; ? not resolved"),
             "automargin": False, "yref": "container", "yanchor": "top"}
    figure.update_layout(title=title, template="plotly_white", height=500, autosize=True, font={"size": 13},
                         margin={"l": 10, "r": 10, "t": 105, "b": 10})
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
    labels = [label(n) for n in names]
    figure = go.Figure(go.Bar(x=labels, y=values, marker_color=colours, name="I(a; â)",
                              error_y={"type": "data", "array": upper, "arrayminus": lower, "visible": True},
                              customdata=hover,
                              hovertemplate="%{x}: I = %{y:.3f} nats, null %{customdata[1]:.3f}, "
                                            "%{customdata[2]}<extra></extra>"))
    if any(e.get("null_mean") is not None for e in entries):
        figure.add_trace(go.Scatter(x=labels, y=[e.get("null_mean") for e in entries], mode="markers",
                                    name="identity-permutation null (mean)",
                                    marker={"symbol": "line-ew-open", "size": 18, "color": "black"}))
    figure.update_layout(title=f"What {report.pack} keeps: I(a; â) on {report.data} ({report.n_faces} faces; "
                               f"{len(report.kept)} attributes kept, grey: not distinguishable from chance)",
                         xaxis_title="attribute (kept ones by excess over the null, then the rest)",
                         yaxis_title="I(a; â), nats", xaxis_automargin=True, template="plotly_white", height=520)
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
        figure.add_trace(go.Bar(x=[label(n) for n in names], y=ys, name=pack,
                                marker_color=PACK_COLOURS[k % len(PACK_COLOURS)], marker_opacity=opacity,
                                error_y={"type": "data", "array": up, "arrayminus": down, "visible": True}))
    figure.update_layout(title=f"Excess I(a; â) over the identity-permutation null on {comparison.data} "
                               "(attributes some model keeps; faded: that model does not)", barmode="group",
                         xaxis_title="attribute", yaxis_title="I(a; â) − null mean, nats",
                         xaxis_automargin=True, template="plotly_white", height=520)
    return figure
