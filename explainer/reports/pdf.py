"""report.pdf: a pair explanation as a document an investigator can file (fpdf2; charts by matplotlib).

Its text is deterministic for the same inputs and seed: every number comes from the explanation's
canonical record (report.json), the creation date is fixed, and no path, time or host name is written.
Sections: decision with the likelihood ratio and its verbal equivalent, quality flags, images, s_a chart
and LBP map, attribute table with FISWG components, calibration summary with the Tippett plot, notes,
provenance.
"""
from __future__ import annotations

import datetime
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from explainer.evidence.fiswg import fiswg_component
from explainer.evidence.likelihood_ratio import STANDING, decision_and_lr
from explainer.evidence.quality import RANGED
from explainer.reports.readings import no_flip_reading
from explainer.reports.summary import plain, summary_sentences

# A fixed creation date: the same explanation writes the same document.
CREATION_DATE = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
IMAGES = (("probe_aligned", "probe (aligned)"), ("reference_aligned", "reference (aligned)"),
          ("counterfactual", "counterfactual probe"), ("perturbation_amplified", "change, amplified"),
          ("probe_decoder_frame", "probe photo, recovery frame"), ("recovered_probe", "recovered probe"),
          ("reference_decoder_frame", "reference photo, recovery frame"), ("recovered_reference", "recovered reference"),
          ("recovered_counterfactual", "recovered probe + T(z_cf) − T(z_probe)"))
QUALITY_ROWS = ("face_width_px", "inter_eye_px", "sharpness", "exposure", "contrast", "underexposed_fraction",
                "overexposed_fraction", "yaw", "pitch", "roll", "colour", "jpeg_quality", "glasses_probability",
                "hat_probability", "faces_found")


def _font_dir() -> Path:
    import matplotlib

    # DejaVu ships with matplotlib: a Unicode font (s_a, ∞, ≤, L∞) available wherever the charts are drawn.
    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def _fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return " x ".join(_fmt(v) for v in value)
    return str(value)


def _png(figure) -> io.BytesIO:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(figure)
    buffer.seek(0)
    return buffer


def _significance_chart(record: dict, label: str) -> io.BytesIO:
    """The app's and report.html's s_a chart, drawn by matplotlib: the same bars in the same order, colours
    and marks (explainer.reports.figures), the first SHOWN_BARS of them (the table below lists all);
    `label` names the intervals' level ("95 %")."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from explainer.reports.figures import CUSTOM_COLOUR, PAPER_COLOUR, SHOWN_BARS, significance_bars

    bars = significance_bars(record)[:SHOWN_BARS]
    figure, axis = plt.subplots(figsize=(8, 1.4 + 0.3 * max(len(bars), 3)), dpi=110)
    rows = np.arange(len(bars))
    for k, bar in enumerate(bars):
        axis.barh(k, bar.value, color=PAPER_COLOUR if bar.paper else CUSTOM_COLOUR,
                  alpha=1.0 if bar.significant else 0.45, edgecolor="#111", linewidth=1.5 if bar.significant else 0,
                  xerr=[[bar.value - bar.low], [bar.high - bar.value]], ecolor="#444", capsize=2)
        axis.text(bar.high, k, ("  ✱ " if bar.significant else "  ") + bar.text, va="center", fontsize=7)
    axis.axvline(1.0, color="black", linestyle="--", linewidth=0.8)
    axis.text(1.0, -0.7, "s_a = 1", ha="center", va="bottom", fontsize=7)
    axis.set_yticks(rows, [bar.label for bar in bars], fontsize=7)
    axis.set_ylim(len(bars) - 0.5, -1.2)
    axis.set_xlim(0, max([bar.high for bar in bars] + [1.0]) * 1.25)
    axis.set_xlabel("s_a: change by the counterfactual ÷ probe-to-reference difference", fontsize=8)
    title = f"What the decision relied on: s_a per attribute, {label} interval; ✱ significant"
    shown = f" (top {len(bars)} of {len(significance_bars(record))})" if len(bars) < len(significance_bars(record)) else ""
    axis.set_title(title + shown, fontsize=9)
    from matplotlib.patches import Patch

    axis.legend(handles=[Patch(color=PAPER_COLOUR, label="paper's nine"), Patch(color=CUSTOM_COLOUR, label="custom"),
                         Patch(facecolor="white", edgecolor="#111", label="significant (solid, outlined)")],
                fontsize=7, loc="lower right")
    figure.tight_layout()
    return _png(figure)


def _lbp_map(record: dict, images: dict) -> io.BytesIO:
    """The app's and report.html's LBP map: the same grid, colour scale and outlines over the same face."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from explainer.reports.figures import GRID, LBP_COLOURS, lbp_cells, lbp_face

    grid, text, significant, top = lbp_cells(record)
    face, over = lbp_face(images)
    figure, axis = plt.subplots(figsize=(4.2, 3.6), dpi=110)
    size = face.shape[0] if face is not None else GRID
    if face is not None:
        axis.imshow(face, extent=(0, size, size, 0))
    shown = axis.imshow(grid, cmap=LBP_COLOURS, alpha=0.5, vmin=0, vmax=top, extent=(0, size, size, 0))
    cell = size / GRID
    for row in range(GRID):
        for column in range(GRID):
            axis.text((column + 0.5) * cell, (row + 0.5) * cell, text[row][column], ha="center", va="center",
                      fontsize=6)
    for row, column in significant:
        axis.add_patch(Rectangle((column * cell, row * cell), cell, cell, fill=False, edgecolor="black", linewidth=2))
    colourbar = figure.colorbar(shown, ax=axis, ticks=[0, 1, top], fraction=0.046)
    colourbar.ax.set_yticklabels(["0", "1", f"{top:.1f}"], fontsize=7)
    colourbar.set_label("s_a", fontsize=8)
    axis.set_axis_off()
    axis.set_title(f"Texture s_a per face cell, {over}\noutlined: significant; ? not resolved", fontsize=8)
    figure.tight_layout()
    return _png(figure)


def _tippett(recognizer: str, log10_lr: float | None) -> io.BytesIO | None:
    import tempfile

    from explainer.evidence.likelihood_ratio import CalibrationMissing
    from explainer.reports.evidence_figures import write_pngs

    try:
        with tempfile.TemporaryDirectory() as folder:
            path = write_pngs(recognizer, folder, log10_lr)["tippett"]
            return io.BytesIO(path.read_bytes())
    except CalibrationMissing:
        return None


class _Document:
    def __init__(self) -> None:
        from fpdf import FPDF

        self.pdf = FPDF(format="A4")
        self.pdf.set_creation_date(CREATION_DATE)
        self.pdf.set_creator("facexplain")
        self.pdf.set_title("facexplain: pair explanation")
        fonts = _font_dir()
        self.pdf.add_font("DejaVu", "", str(fonts / "DejaVuSans.ttf"))
        self.pdf.add_font("DejaVu", "B", str(fonts / "DejaVuSans-Bold.ttf"))
        self.pdf.add_font("DejaVuMono", "", str(fonts / "DejaVuSansMono.ttf"))
        self.pdf.set_auto_page_break(True, margin=15)
        self.pdf.add_page()

    def heading(self, text: str, size: int = 13) -> None:
        self.pdf.set_font("DejaVu", "B", size)
        self.pdf.multi_cell(0, size * 0.55, text, new_x="LMARGIN", new_y="NEXT")
        self.pdf.ln(1)

    def text(self, text: str, size: int = 9, bold: bool = False) -> None:
        self.pdf.set_font("DejaVu", "B" if bold else "", size)
        self.pdf.multi_cell(0, size * 0.5, text, new_x="LMARGIN", new_y="NEXT")

    def mono(self, text: str, size: int = 6) -> None:
        self.pdf.set_font("DejaVuMono", "", size)
        self.pdf.multi_cell(0, size * 0.45, text, new_x="LMARGIN", new_y="NEXT")

    def table(self, rows: list[list[str]], widths: tuple | None = None, size: int = 8) -> None:
        self.pdf.set_font("DejaVu", "", size)
        with self.pdf.table(col_widths=widths, text_align="LEFT", line_height=size * 0.55,
                            first_row_as_headings=True) as table:
            for row in rows:
                cells = table.row()
                for cell in row:
                    cells.cell(cell)
        self.pdf.ln(2)

    def images(self, items: list[tuple[np.ndarray, str]], width: float = 32) -> None:
        if self.pdf.get_y() + width + 10 > self.pdf.h - 15:
            self.pdf.add_page()
        x0, y = self.pdf.l_margin, self.pdf.get_y()
        self.pdf.set_font("DejaVu", "", 6)
        for k, (image, caption) in enumerate(items):
            x = x0 + k * (width + 3)
            self.pdf.image(Image.fromarray(np.ascontiguousarray(image)), x=x, y=y, w=width, h=width)
            self.pdf.set_xy(x, y + width + 0.5)
            self.pdf.multi_cell(width, 2.8, caption, align="C", new_x="RIGHT", new_y="TOP")
        self.pdf.set_xy(x0, y + width + 7)

    def picture(self, buffer: io.BytesIO, width: float) -> None:
        with Image.open(buffer) as image:
            height = width * image.height / image.width
            if self.pdf.get_y() + height > self.pdf.h - 15:
                self.pdf.add_page()
            self.pdf.image(image.copy(), x=self.pdf.l_margin, w=width, h=height)
        self.pdf.ln(2)


def _significance_section(doc: _Document, record: dict, images: dict, expl) -> None:
    """The s_a chart, the LBP map, what is significant and the table of every named attribute."""
    label = expl.interval_label
    doc.picture(_significance_chart(record, label), 180)
    doc.picture(_lbp_map(record, images), 100)
    named = [n for n in record["significant"] if record["groups"][n] != "lbp"]
    doc.text("Significant (the whole 95 % interval of s_a above 1): " + (", ".join(named) if named else "none") + "."
             + ("" if expl.interval_reaches_confidence else
                f" None can be: {expl.stability.members_flipped} members give the median a {label} interval (their "
                "lowest to highest value), too few for 95 %."))
    rows = [["attribute", "FISWG component", "group", "s_a", f"{label} interval"]]
    for name in record["ranking"]:
        if record["groups"][name] == "lbp":
            continue
        flag = record["significance_flags"].get(name)
        value = _fmt(record["significance"].get(name)) if flag in (None, "floored") else flag
        interval = record["significance_interval"].get(name)
        span = "–" if interval is None else f"[{_fmt(interval[0])}, {_fmt(interval[1])}]"
        rows.append([name, fiswg_component(name), record["groups"][name], ("≥" if flag == "floored" else "") + value, span])
    doc.table(rows, widths=(62, 42, 22, 20, 34), size=7)


def write_pdf(expl, path) -> Path:
    """The pair explanation `expl` (explainer.jobs.pipeline.PairExplanation) as report.pdf at `path`."""
    from explainer.reports.canonical import dumps

    record = json.loads(expl.to_json())  # the canonical (rounded) record: what report.json says, nothing else
    d, c, stability = expl.decision, expl.counterfactual, expl.stability
    quality, calibration = record.get("quality"), record.get("calibration") or {}
    doc = _Document()
    outcome = "match" if d.match else "no match"
    doc.heading(f"facexplain: why {d.recognizer} said “{outcome}”", 15)
    if record.get("case"):
        doc.text(f"Case: {record['case']}", size=11, bold=True)
    doc.heading("In short")
    for sentence in summary_sentences(record):
        doc.text(plain(sentence), size=10)
    doc.pdf.ln(2)

    doc.heading("Decision and strength of evidence")
    kind = "Euclidean distance (lower = more alike)" if d.euclidean else "cosine similarity (higher = more alike)"
    doc.text(f"Decision: {outcome}. Score {d.similarity:.4f} ({kind}); threshold {d.threshold:.4f} "
             f"({d.threshold_source}).")
    if d.log10_lr is not None:
        lr = 10 ** d.log10_lr
        lr_words = f"{lr:,.0f}" if lr >= 10 else (f"1/{1 / lr:,.0f}" if lr <= 0.1 else f"{lr:.2f}")
        doc.text(f"Likelihood ratio: log10 LR = {d.log10_lr:+.2f} (LR ≈ {lr_words})", size=11, bold=True)
        if d.lr_bounded:
            doc.text("This LR is at the calibration's ELUB bound: the most extreme value its data support.")
        doc.text(f"Verbal equivalent: {d.verbal}.")
        propositions = d.propositions or {}
        doc.text(f"Hp: {propositions.get('Hp', 'same person')}; Hd: {propositions.get('Hd', 'different people')}. "
                 f"Scale: {calibration.get('verbal_scale', d.verbal_scale or '')}.")
        parting = decision_and_lr(d.match, d.log10_lr, d.fmr)
        if parting:
            doc.text(parting)
        doc.text(STANDING)
    else:
        doc.text("Likelihood ratio: not available for this recognizer (no calibration).", bold=True)
    for warning in d.warnings:
        doc.text(f"Warning: {warning}")
    doc.pdf.ln(2)

    if quality:
        doc.heading("Image quality")
        ranges = _calibration_ranges()
        rows = [["flag", "probe", "reference", "calibration photos (range)"]]
        for name in QUALITY_ROWS:
            key = f"{name}_abs" if name in ("yaw", "pitch") else name
            span = ranges.get(key)
            span_text = (f"|{name}| {span[0]:.3g} to {span[1]:.3g}" if name in ("yaw", "pitch") else
                         f"{span[0]:.3g} to {span[1]:.3g}") if isinstance(span, list) and len(span) == 2 and \
                not isinstance(span[0], str) else (", ".join(span) if isinstance(span, list) else "–")
            label = RANGED.get(name, name.replace("_", " "))
            rows.append([label, _fmt(quality["probe"].get(name)), _fmt(quality["reference"].get(name)), span_text])
        doc.table(rows, widths=(48, 28, 28, 50))

    doc.heading("Counterfactual")
    doc.text(f"{stability.members_flipped} of {stability.members} seeded "
             f"counterfactual members flipped the decision. The one shown: {c.attack}, "
             f"{'flipped' if c.flipped else 'NOT flipped'} at L∞ {c.linf_255}/255 (measured on the saved image) "
             f"(L2 {c.l2:.3g}); new score {c.similarity:.4f}{c.recovered_score_text()}. "
             f"Recovery: {stability.refine_rule}.")
    images = getattr(expl, "images", {})
    doc.images([(images[n], caption) for n, caption in IMAGES[:4] if n in images])
    doc.images([(images[n], caption) for n, caption in IMAGES[4:8] if n in images])
    doc.images([(images[n], caption) for n, caption in IMAGES[8:] if n in images])

    doc.heading("Attribute significance")
    if c.flipped:
        _significance_section(doc, record, images, expl)
    else:  # no flip, no ranking
        doc.text(no_flip_reading(expl), bold=True)

    doc.heading("Calibration of the likelihood ratio")
    if calibration.get("available", bool(calibration)):
        doc.table([["", ""], ["method", f"{calibration['method']} (NFI lir {calibration['lir_version']}), "
                                        f"{calibration['bounding']} bounds {calibration['log10_lr_bounds']}"],
                   ["data", f"{calibration['data']}: {calibration['n_genuine']} genuine, "
                            f"{calibration['n_impostor']} impostor pairs, {calibration['n_people']} people"],
                   ["counted by person", f"{calibration.get('n_genuine_effective')} people with genuine pairs, "
                                         f"{calibration.get('n_impostor_effective')} independent impostor comparisons; "
                                         f"genuine pairs at most {calibration.get('genuine_cap_per_person')} per "
                                         "person"],
                   ["validation", calibration["validation"]],
                   ["Cllr (held out)", f"{calibration['cllr']:.4f}"], ["Cllr_min", f"{calibration['cllr_min']:.4f}"],
                   ["LRs on the correct side of 1", f"{100 * calibration['correct_sign']:.2f} %"],
                   ["refit by", calibration["command"]]], widths=(45, 135))
        tippett = _tippett(d.recognizer, d.log10_lr)
        if tippett is not None:
            doc.picture(tippett, 110)
    else:
        doc.text(calibration.get("reason", "no calibration"))

    doc.heading("Notes")
    for note in record["notes"]:
        doc.text(f"• {note}", size=8)
    doc.heading("Provenance")
    doc.mono(dumps(record["provenance"]))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc.pdf.output(str(path))
    return path


def _calibration_ranges() -> dict:
    from explainer.evidence.likelihood_ratio import load_table

    return load_table().get("photos", {}).get("ranges", {})
