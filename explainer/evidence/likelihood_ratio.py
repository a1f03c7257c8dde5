"""A recognizer's score as a calibrated likelihood ratio, its verbal equivalent, and when not to trust it.

    decision_evidence("dlib-resnet", 0.41)     # {"log10_lr", "verbal", "warnings", ...}
    pair_evidence(name, score, photos, sources)  # + quality flags of both photos, calibration summary

Propositions: Hp, the two photos show the same person; Hd, they show two different people. The LR is
P(score | Hp) / P(score | Hd), read from the committed calibration table
(`explainer/recognition/calibration_lr.json`, written by `facexplain bench verify --calibrate` with NFI's
lir; see explainer.evidence.fitting). Deciding a pair needs no lir import.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

CALIBRATION_LR_FILE = Path(__file__).parents[1] / "recognition" / "calibration_lr.json"
PROPOSITIONS = {"Hp": "the probe and the reference show the same person",
                "Hd": "the probe and the reference show two different people"}
VERBAL_SCALE_SOURCE = ("ENFSI Guideline for Evaluative Reporting in Forensic Science (European Network of "
                       "Forensic Science Institutes, 2015), verbal equivalents of likelihood ratios")
# ENFSI (2015): upper end of each LR band (LR >= 1 side) and its words; below 1 the same words apply to
# 1/LR with the propositions swapped. An LR under 2 is "no support" for either: the guideline's scale
# starts its first band of support at 2.
VERBAL_BANDS = ((2.0, "no support for either proposition over the other"),
                (10.0, "weak support"),
                (100.0, "moderate support"),
                (1_000.0, "moderately strong support"),
                (10_000.0, "strong support"),
                (1_000_000.0, "very strong support"),
                (float("inf"), "extremely strong support"))


# What the LR is and is not, said the same way in the About tab, the Evidence accordion and the PDF.
STANDING = ("The likelihood ratio says how this model's score behaved on the calibration photos (a few hundred "
            "people: grey ORL photos, colour portraits and video frames); its ENFSI verbal equivalent is that number "
            "in words. It is a research figure, not a validated forensic comparison and not evidence of identity on "
            "its own: casework needs a calibration validated on data like the case's.")


def decision_and_lr(match: bool, log10_lr: float | None, fmr: float | None = None) -> str | None:
    """What the decision and the LR each mean, when they point different ways (None when they agree, or
    there is no LR). Both can hold: the threshold is set to keep false matches rare, the LR weighs the score
    alone, so between the threshold and the score where LR = 1 they part."""
    if log10_lr is None or log10_lr == 0 or (log10_lr > 0) == bool(match):
        return None
    rate = f"about 1 in {round(1 / fmr):,}" if fmr else "few"
    policy = (f"The decision is an operating point: \"match\" needs a score past a threshold set so that {rate} "
              "different-person pairs pass it")
    if not match:
        return (f"The decision and the likelihood ratio point different ways, and both hold. {policy}; this score "
                f"is not past it. The LR weighs the score alone: such a score is {10 ** log10_lr:.3g} times as "
                "probable if the photos show the same person as if they show different people (on the calibration "
                f"data). So: no match at this threshold, and {verbal(log10_lr)}. For evaluative reporting the LR is the "
                "figure; the decision is the model's operating point.")
    return (f"The decision and the likelihood ratio point different ways, and both hold. {policy}; this score is "
            f"past it. The LR weighs the score alone: such a score is {10 ** -log10_lr:.3g} times as probable if "
            "the photos show different people as if they show the same person (on the calibration data). So: a "
            f"match at this threshold, and {verbal(log10_lr)}. For evaluative reporting the LR is the figure; the "
            "decision is the model's operating point.")


class CalibrationMissing(LookupError):
    """No LR calibration for this recognizer (a user's own model, or a missing calibration file)."""


@functools.lru_cache(maxsize=1)
def load_table() -> dict:
    if not CALIBRATION_LR_FILE.is_file():
        return {"recognizers": {}, "photos": {}}
    return json.loads(CALIBRATION_LR_FILE.read_text())


def _entry(recognizer: str) -> dict:
    entry = load_table()["recognizers"].get(recognizer)
    if entry is None:
        raise CalibrationMissing(f"no likelihood-ratio calibration for {recognizer!r}; `facexplain bench verify "
                                 f"--calibrate --model {recognizer}` fits one (for the built-in recognizers)")
    return entry


def verbal(log10_lr: float) -> str:
    """The ENFSI verbal equivalent of a log10 LR, naming the proposition it supports."""
    if not np.isfinite(log10_lr):
        raise ValueError(f"log10 LR must be finite, got {log10_lr}")
    strength = 10 ** abs(log10_lr)
    words = next(w for top, w in VERBAL_BANDS if strength < top)
    if strength < VERBAL_BANDS[0][0]:
        return f"the comparison provides {words} (LR close to 1)"
    favoured, other = ("same person", "different people") if log10_lr > 0 else ("different people", "same person")
    return f"the comparison provides {words} for the {favoured} proposition over the {other} proposition"


def log10_lr(recognizer: str, score: float) -> tuple[float, bool, bool]:
    """(log10 LR, whether it sits at the calibration's bound, whether the score is beyond the calibration
    scores' range) of a raw score of `recognizer` (distance or cosine, as the recognizer gives it)."""
    entry = _entry(recognizer)
    if not np.isfinite(score):
        raise ValueError(f"score must be finite, got {score}")
    closeness = float(score) if entry["metric"] == "cosine" else -float(score)
    grid, values = np.asarray(entry["closeness"]), np.asarray(entry["log10_lr"])
    value = float(np.interp(closeness, grid, values))
    low, high = entry["log10_lr_bounds"]
    return round(value, 4), bool(value <= low or value >= high), bool(not grid[0] <= closeness <= grid[-1])


def calibration_summary(recognizer: str) -> dict:
    """What report.json's `calibration` holds: method, data counts, held-out Cllr and Cllr_min, lir version."""
    entry = _entry(recognizer)
    held = entry["held_out"]
    return {"recognizer": recognizer, "method": entry["method"], "n_genuine": entry["n_genuine"],
            "n_impostor": entry["n_impostor"], "n_people": entry["n_people"],
            "n_genuine_effective": entry.get("n_genuine_effective"),
            "n_impostor_effective": entry.get("n_impostor_effective"),
            "n_genuine_before_cap": entry.get("n_genuine_before_cap"),
            "genuine_cap_per_person": entry.get("genuine_cap_per_person"),
            "held_out_scored": [held["n_genuine"], held["n_impostor"]], "lr_one_at_score": entry.get("lr_one_at_score"),
            "cllr": entry["cllr"],
            "cllr_min": entry["cllr_min"], "correct_sign": held["correct_sign"], "lir_version": entry["lir_version"],
            "log10_lr_bounds": entry["log10_lr_bounds"], "bounding": "ELUB, counted by person", "data": entry["data"],
            "validation": entry["validation"], "command": entry["command"], "verbal_scale": VERBAL_SCALE_SOURCE,
            "table_sha256": _table_sha256()}


def calibration_words(summary: dict) -> str:
    """The calibration in one paragraph, as the app and the reports state it (n as it is, bounds by person)."""
    effective = ""
    if summary.get("n_genuine_effective") is not None:
        effective = (f", counted by person: {summary['n_genuine_effective']} people with genuine pairs and "
                     f"{summary['n_impostor_effective']} independent impostor comparisons")
    cap = (f" (at most {summary['genuine_cap_per_person']} per person, of {summary['n_genuine_before_cap']:,})"
           if summary.get("genuine_cap_per_person") else "")
    return (f"Calibration: {summary['method']} (NFI lir {summary['lir_version']}), ELUB bounds "
            f"{summary['log10_lr_bounds']}{effective}; {summary['n_genuine']:,} genuine pairs{cap} and "
            f"{summary['n_impostor']:,} impostor pairs of {summary['n_people']} people, every pair scored by a "
            f"calibrator fitted without its two people: Cllr {summary['cllr']:.3f}, Cllr_min "
            f"{summary['cllr_min']:.3f}, {100 * summary['correct_sign']:.2f} % of LRs on the correct side of 1.")


@functools.lru_cache(maxsize=1)
def _table_sha256() -> str:
    import hashlib

    return hashlib.sha256(CALIBRATION_LR_FILE.read_bytes()).hexdigest()


def decision_evidence(recognizer: str, score: float, quality: dict | None = None) -> dict:
    """log10_lr, verbal, and warnings for one score; `quality` {probe, reference} (quality_flags of each
    photo) adds a warning for every flag outside the calibration photos' conditions."""
    from explainer.evidence.quality import outside_conditions

    try:
        value, bounded, beyond = log10_lr(recognizer, score)
    except CalibrationMissing as missing:
        return {"log10_lr": None, "verbal": None, "lr_bounded": None, "warnings": [str(missing)]}
    warnings = []
    if beyond:
        warnings.append(f"the score {score:.4g} lies beyond every calibration pair's score: the LR is held at the "
                        "value at the edge of the calibration data")
    if quality:
        photos = load_table().get("photos", {})
        ranges = photos.get("ranges", {})
        colours = {flags["colour"] for flags in quality.values()}
        if len(colours) > 1:
            warnings.append("one photo is grey and the other colour: the calibration pairs were grey with grey "
                            "(ORL) or colour with colour, never mixed")
        elif ranges.get("colour") and not colours <= set(ranges["colour"]):
            warnings.append(f"{', '.join(sorted(colours))} photos: not among the calibration photos' kinds")
        for role, flags in quality.items():
            warnings += outside_conditions(flags, ranges, role)
    # lr_bounded: the LR sits at the ELUB bound, the most extreme value the calibration data support (the
    # score may well say more); it is the LR to report, not a warning about the pair.
    return {"log10_lr": value, "verbal": verbal(value), "verbal_scale": "ENFSI 2015", "lr_bounded": bounded,
            "propositions": PROPOSITIONS, "warnings": warnings}


def pair_evidence(recognizer: str, score: float, photos: dict, sources: dict | None = None) -> dict:
    """Everything a report needs about the evidence of one pair.

    photos: {role: (image, DetectedFace)}, as explain_pair holds them; sources: {role: path, bytes or
    array} for the JPEG quality. Returns {"decision": fields to add to the decision, "quality":
    {role: flags}, "calibration": calibration_summary or {"available": False}}."""
    from explainer.evidence.quality import quality_flags

    sources = sources or {}
    quality = {role: quality_flags(image, face, sources.get(role)) for role, (image, face) in photos.items()}
    try:
        calibration = {"available": True, **calibration_summary(recognizer)}
    except CalibrationMissing as missing:
        calibration = {"available": False, "reason": str(missing)}
    return {"decision": decision_evidence(recognizer, score, quality), "quality": quality, "calibration": calibration}


def curves(recognizer: str) -> dict:
    """The held-out ECE and Tippett curves of the recognizer's calibration (for the figures)."""
    entry = _entry(recognizer)
    return {"ece": entry["ece"], "tippett": entry["tippett"], "method": entry["method"], "cllr": entry["cllr"],
            "cllr_min": entry["cllr_min"]}
