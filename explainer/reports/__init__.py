"""Reports: Plotly figures, canonical JSON and self-contained HTML (opens offline; no CDN).

    significance_figure(expl)   s_a bars by attribute group, with the s_a = 1 line
    lbp_heatmap_figure(expl)    the 7x7 LBP-cell s_a over the recovered probe face
    mi_figure(report)           I(a; â) bars with intervals
    comparison_figure(comp)     normalised MI of two or more models side by side
    write_html(expl, path)      the pair explanation as one HTML file, figures and images inline
"""
from explainer.reports.figures import comparison_figure, lbp_heatmap_figure, mi_figure, significance_figure
from explainer.reports.html import write_comparison_html, write_html, write_model_html

__all__ = ["comparison_figure", "lbp_heatmap_figure", "mi_figure", "significance_figure", "write_comparison_html",
           "write_html", "write_model_html"]
