"""The explain tab's "Evidence strength" accordion: the likelihood ratio in words, the pair's quality
flags, the attributes with their FISWG components, and the calibration's Tippett and ECE plots."""
from __future__ import annotations

from explainer.evidence.fiswg import fiswg_component
from explainer.evidence.likelihood_ratio import STANDING, CalibrationMissing, calibration_words, decision_and_lr
from explainer.reports.evidence_figures import ece_figure, tippett_figure

QUALITY_SHOWN = {"face_width_px": "face width (px)", "inter_eye_px": "eye distance (px)",
                 "sharpness": "sharpness (var. of Laplacian)", "exposure": "exposure (mean luminance)",
                 "contrast": "contrast (luminance std)", "yaw": "yaw (°)", "pitch": "pitch (°)", "colour": "grey / colour",
                 "jpeg_quality": "JPEG quality", "glasses_probability": "glasses (probability)",
                 "hat_probability": "hat (probability)"}


def _cell(value) -> str:
    if value is None:
        return "–"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def evidence_markdown(expl) -> str:
    d = expl.decision
    evidence = getattr(expl, "evidence", {}) or {}
    lines = []
    if d.log10_lr is None:
        lines.append("**No calibrated likelihood ratio for this recognizer.**")
    else:
        lines.append(f"**Likelihood ratio: log10 LR = {d.log10_lr:+.2f}**: {d.verbal}. "
                     "Hp: same person; Hd: different people. Verbal scale: ENFSI Guideline for Evaluative Reporting "
                     "in Forensic Science (2015)."
                     + (" This LR is at the calibration's ELUB bound: the most extreme value its data support."
                        if d.lr_bounded else ""))
    parting = decision_and_lr(d.match, d.log10_lr, d.fmr)
    if parting:
        lines.append(parting)
    lines += [f"⚠ {warning}" for warning in d.warnings]
    if d.log10_lr is not None:
        lines.append(f"*{STANDING}*")
    calibration = evidence.get("calibration", {})
    if calibration.get("available"):
        lines.append(calibration_words(calibration))
    quality = evidence.get("quality")
    if quality:
        lines.append("| quality flag | probe | reference |\n|---|---|---|\n" + "\n".join(
            f"| {label} | {_cell(quality['probe'].get(k))} | {_cell(quality['reference'].get(k))} |"
            for k, label in QUALITY_SHOWN.items()))
    rows = [n for n in expl.ranking if expl.groups[n] != "lbp"]
    lines.append(f"| attribute | FISWG component | s_a | {expl.interval_label} interval |\n|---|---|---|---|\n" + "\n".join(
        f"| {n.replace('_', ' ')} | {fiswg_component(n)} | {_cell(expl.significance.get(n))} | "
        f"{_interval(expl.significance_interval.get(n))} |" for n in rows))
    return "\n\n".join(lines)


def _interval(interval) -> str:
    return "–" if interval is None else f"[{_cell(interval[0])}, {_cell(interval[1])}]"


def evidence_figures(expl) -> tuple:
    """(Tippett plot with this pair's LR, ECE plot), or (None, None) for an uncalibrated recognizer."""
    try:
        return tippett_figure(expl.decision.recognizer, expl.decision.log10_lr), \
            ece_figure(expl.decision.recognizer)
    except CalibrationMissing:
        return None, None
