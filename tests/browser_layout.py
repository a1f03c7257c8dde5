"""Layout checks run in a real browser (tests/test_app_browser.py): is any plot's text cut off?

A title, axis title, tick label, legend entry, annotation, button or bar label is clipped when its
bounding box leaves its plot's SVG (Plotly draws outside its margins without complaint) or the plot
leaves the page block Gradio gives it. Plots in closed accordions have no box and are skipped.
"""
from __future__ import annotations

import time

# Every kind of text Plotly draws: titles (gtitle, axis titles), ticks, legend, annotations (the s_a = 1
# label), update-menu buttons ("show all"), colour-bar title and ticks, text on bars and heat-map cells.
TEXT_SELECTORS = (".gtitle, .g-xtitle text, .g-ytitle text, .xtick text, .ytick text, .legendtext, "
                  ".annotation-text, .updatemenu-item-text, .cbtitle text, .cbaxis text, .bartext, .textpoint text, "
                  ".hm text")
TOLERANCE_PX = 1.0

_CLIPPED_JS = """
const selectors = arguments[0], tol = arguments[1], out = [];
for (const plot of document.querySelectorAll('.js-plotly-plot')) {
  const box = plot.getBoundingClientRect();
  if (box.width === 0 || box.height === 0) continue;               // hidden (a closed accordion)
  const svg = plot.querySelector('.main-svg').getBoundingClientRect();
  const block = plot.closest('[id]');
  const owner = block ? block.id : '?';
  const page = block.getBoundingClientRect();
  if (svg.left < page.left - tol || svg.right > page.right + tol)
    out.push({plot: owner, text: '(the plot itself)', box: [svg.left, svg.right], within: [page.left, page.right]});
  // Text may sit in the main SVG or in the overlay SVG that holds titles, legend and buttons.
  for (const element of plot.querySelectorAll(selectors)) {
    const r = element.getBoundingClientRect();
    const text = (element.textContent || '').trim();
    if (!text || r.width === 0) continue;
    if (r.left < svg.left - tol || r.right > svg.right + tol || r.top < svg.top - tol || r.bottom > svg.bottom + tol)
      out.push({plot: owner, text: text, box: [r.left, r.top, r.right, r.bottom],
                within: [svg.left, svg.top, svg.right, svg.bottom]});
  }
}
return out;
"""

_TICKS_JS = """
const root = document.getElementById(arguments[0]);
const plot = root.classList.contains('js-plotly-plot') ? root : root.querySelector('.js-plotly-plot');
const shown = [...plot.querySelectorAll('.ytick text')].filter(t => t.textContent.trim() && t.getBoundingClientRect().height > 0);
const range = plot._fullLayout.yaxis.range;
return {labels: shown.length, in_view: Math.round(Math.abs(range[0] - range[1]))};
"""


def clipped_text(driver) -> list[dict]:
    """Each text element of a visible Plotly plot that lies outside its plot (empty: nothing cut off)."""
    return driver.execute_script(_CLIPPED_JS, TEXT_SELECTORS, TOLERANCE_PX)


def category_labels(driver, elem_id: str) -> dict:
    """How many y tick labels a bar chart shows, and how many bars its y range holds in view."""
    return driver.execute_script(_TICKS_JS, elem_id)


def settle(driver, seconds: float = 1.5) -> None:
    """Let Plotly's responsive relayout after a window resize finish (it is debounced)."""
    driver.execute_script("window.dispatchEvent(new Event('resize'));")
    time.sleep(seconds)
