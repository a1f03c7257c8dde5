"""Forensic evidence: calibrated likelihood ratios per recognizer, image-quality flags, FISWG components.

    pair_evidence(recognizer, score, photos, sources)  # decision fields, quality {probe, reference}, calibration
    decision_evidence(recognizer, score)               # log10_lr, verbal (ENFSI 2015), warnings
    quality_flags(image, face, source)                 # face width, sharpness, exposure, pose, grey/colour, JPEG
    fiswg_component(attribute)                         # the FISWG facial component an attribute describes
"""
from explainer.evidence.fiswg import fiswg_component
from explainer.evidence.likelihood_ratio import (CalibrationMissing, calibration_summary, decision_evidence,
                                                 pair_evidence, verbal)
from explainer.evidence.quality import quality_flags

__all__ = ["CalibrationMissing", "calibration_summary", "decision_evidence", "fiswg_component", "pair_evidence",
           "quality_flags", "verbal"]
