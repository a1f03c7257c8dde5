"""Counterfactuals: the smallest pixel change to a probe's aligned crop that flips a recognizer's decision.

    pgd_counterfactual(recognizer, probe_crop, reference_embedding, ...)          white-box, minimal L∞
    transfer_counterfactual(target, surrogate, probe_crop, reference_embedding, ...)  TALFW/DFANet-style

Both work on the target recognizer's own aligned crop (float [0, 1]); the result is re-quantised to
uint8 and re-checked on the target, so the flip holds for the saved PNG.
"""
from explainer.counterfactual.objective import DecisionGoal, quantise
from explainer.counterfactual.pgd import DEFAULT_SCHEDULE, EmbeddingPGD, pgd_counterfactual, pgd_counterfactuals
from explainer.counterfactual.result import Counterfactual
from explainer.counterfactual.transfer import (DEFAULT_SURROGATES, FeatureDropout, SurrogateView, TransferPGD,
                                               transfer_counterfactual, transfer_counterfactuals)

__all__ = [
    "DEFAULT_SCHEDULE", "DEFAULT_SURROGATES", "Counterfactual", "DecisionGoal", "EmbeddingPGD", "FeatureDropout",
    "SurrogateView", "TransferPGD", "pgd_counterfactual", "pgd_counterfactuals", "quantise",
    "transfer_counterfactual", "transfer_counterfactuals",
]
